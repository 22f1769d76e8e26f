"""The asyncio API, on both transports."""

import asyncio

import pytest

import busbar


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_recv_call_and_async_for(bus):
    async def main():
        replier = busbar.AsyncEndpoint(bus.open())
        client = busbar.AsyncEndpoint(bus.open())
        replier.bind("$.a", replier=True)

        async def serve(n):
            count = 0
            async for req in replier:
                replier.reply(req, req.data.upper())
                count += 1
                if count == n:
                    return

        server = asyncio.create_task(serve(3))
        replies = await asyncio.gather(*(client.call("$.a", b"x%d" % i, timeout=10) for i in range(3)))
        assert sorted(r.data for r in replies) == [b"X0", b"X1", b"X2"]
        await server
        assert await client.recv(timeout=0.05) is None
        async with client, replier:
            pass
        assert client.endpoint.closed

    run(main())


def test_cancelled_call_loses_no_reply(bus):
    async def main():
        r = bus.open()
        c = busbar.AsyncEndpoint(bus.open())
        r.bind("$.slow", replier=True)
        task = asyncio.create_task(c.call("$.slow", b"", timeout=None))
        req = await asyncio.get_running_loop().run_in_executor(None, r.recv, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        r.reply(req, b"kept")
        m = await c.recv(timeout=10)
        assert (m.data, m.in_reply_to) == (b"kept", req.id)
        r.close()
        c.endpoint.close()

    run(main())


def test_recv_wakes_on_arrival(bus):
    async def main():
        l = busbar.AsyncEndpoint(bus.open())
        s = bus.open()
        l.bind("$.w")
        waiter = asyncio.create_task(l.recv())
        await asyncio.sleep(0)  # let it start waiting
        s.announce("$.w", b"now")
        assert (await waiter).data == b"now"
        s.close()
        l.endpoint.close()

    run(main())


def test_many_concurrent_calls_on_one_endpoint(bus):
    async def main():
        replier = busbar.AsyncEndpoint(bus.open())
        client = busbar.AsyncEndpoint(bus.open())
        replier.bind("$.many", replier=True)
        client.bind("$.news")
        n = 300
        # Each outstanding request holds a slot in the client's queue, and
        # waits in the replier's.
        client.set_queue_limit(n + 10)
        replier.set_queue_limit(n + 10)

        async def serve():
            for _ in range(n):
                req = await replier.recv()
                replier.reply(req, req.data)

        async def news():
            # Announcements to the client while its calls wait: kept for recv.
            for i in range(5):
                replier.announce("$.news", b"n%d" % i)
                await asyncio.sleep(0)

        server = asyncio.create_task(serve())
        results = await asyncio.gather(
            news(), *(client.call("$.many", b"%d" % i, timeout=20) for i in range(n))
        )
        assert [r.data for r in results[1:]] == [b"%d" % i for i in range(n)]
        await server
        got = [(await client.recv(timeout=10)).data for _ in range(5)]
        assert got == [b"n%d" % i for i in range(5)]
        replier.close()
        client.close()

    run(main())


def test_cancelled_recv_loses_no_message(bus):
    async def main():
        l = busbar.AsyncEndpoint(bus.open())
        s = bus.open()
        l.bind("$.c")
        for _ in range(3):
            waiter = asyncio.create_task(l.recv())
            await asyncio.sleep(0)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
        s.announce("$.c", b"1")
        s.announce("$.c", b"2")
        assert [m.data async for m in _take(l, 2)] == [b"1", b"2"]
        assert await l.recv(timeout=0) is None
        s.close()
        l.close()

    run(main())


async def _take(aep, n):
    for _ in range(n):
        yield await aep.recv(timeout=10)


def test_wait_reply_timeout_then_the_reply_comes_to_recv(bus):
    async def main():
        r = bus.open()
        c = busbar.AsyncEndpoint(bus.open())
        r.bind("$.late", replier=True)
        with pytest.raises(busbar.BusTimeoutError) as info:
            await c.call("$.late", b"", timeout=0.05)
        assert info.value.errno == 110
        req = r.recv(timeout=10)
        r.reply(req, b"late")
        m = await c.recv(timeout=10)
        assert (m.data, m.in_reply_to) == (b"late", req.id)
        r.close()
        c.close()

    run(main())


def test_a_full_inbox_leaves_the_bus_queue_to_hold(bus):
    async def main():
        r = busbar.AsyncEndpoint(bus.open())
        c = busbar.AsyncEndpoint(bus.open(), inbox_limit=2)
        r.bind("$.svc", replier=True)
        c.bind("$.flood")
        for i in range(10):
            r.announce("$.flood", bytes([i]))
        call = asyncio.create_task(c.call("$.svc", b"q", timeout=20))
        req = await r.recv(timeout=10)
        r.reply(req, b"a")
        assert (await call).data == b"a"
        assert len(c._inbox) == 2
        got = [(await c.recv(timeout=10)).data for _ in range(10)]
        assert got == [bytes([i]) for i in range(10)]
        r.close()
        c.close()

    run(main())


@pytest.mark.parametrize("how", ["gone_away", "ignored", "unbound"])
def test_the_reply_guarantee_async(bus, how):
    async def main():
        r = bus.open()
        c = busbar.AsyncEndpoint(bus.open())
        r.bind("$.g", replier=True)
        call = asyncio.create_task(c.call("$.g", b"", timeout=20))
        await asyncio.sleep(0)  # the request is sent
        if how == "gone_away":
            r.close()
        elif how == "ignored":
            await asyncio.get_running_loop().run_in_executor(None, r.recv, 10)
            r.close()
        else:
            r.unbind("$.g", replier=True)
        m = await call
        name = {"gone_away": busbar.GONE_AWAY, "ignored": busbar.IGNORED, "unbound": busbar.UNBOUND}[how]
        assert (m.name, m.is_synthetic) == (name, True)
        r.close()
        c.close()

    run(main())
