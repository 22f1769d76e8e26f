"""The reply guarantee: a replier that takes a request and dies still gets
its requester an answer, from the bus itself."""
import busbar

bus = busbar.Bus.connect()
with bus.open() as client:
    replier = bus.open()
    replier.bind("$.fragile", replier=True)
    request_id = client.request("$.fragile", b"please")
    replier.recv(timeout=5)  # takes the request...
    replier.close()          # ...and goes away without replying
    reply = client.wait_reply(request_id, timeout=5)
    print(reply.name, "synthetic:", reply.is_synthetic, "for our request:", reply.in_reply_to == request_id)
    # -> $.KBUS.Replier.Ignored synthetic: True for our request: True
