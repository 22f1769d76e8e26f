"""asyncio: a replier serving many requests at once, and a client making them."""
import asyncio

import busbar


async def serve(ep: busbar.AsyncEndpoint, count: int) -> None:
    async for request in ep:
        ep.reply(request, request.data.upper())
        count -= 1
        if count == 0:
            return


async def main() -> None:
    bus = busbar.Bus.connect()
    async with busbar.AsyncEndpoint(bus.open()) as replier, busbar.AsyncEndpoint(bus.open()) as client:
        replier.bind("$.echo", replier=True)
        server = asyncio.create_task(serve(replier, 50))
        replies = await asyncio.gather(
            *(client.call("$.echo", b"hello %d" % i, timeout=10) for i in range(50))
        )
        await server
        print(len(replies), "replies, the first:", replies[0].data.decode())


asyncio.run(main())
