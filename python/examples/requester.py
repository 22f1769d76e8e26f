"""A requester: asks for the time, and says what came back."""
import busbar

bus = busbar.Bus.connect()
with bus.open() as ep:
    try:
        reply = ep.call("$.clock.time", b"what time is it?", timeout=5)
    except busbar.NoReplierError:
        raise SystemExit("nobody serves $.clock.time: start replier.py first")
    if reply.is_synthetic:  # the bus answered for a replier that went away
        print("no answer:", reply.name)
    else:
        print("the time is", reply.data.decode())
