"""A listener: sees every message under $.clock, requests and replies too."""
import busbar

bus = busbar.Bus.connect()
with bus.open() as ep:
    ep.bind("$.clock.*")  # a wildcard: $.clock and everything below it
    print("listening to $.clock.*", flush=True)
    for msg in ep:
        kind = "reply" if msg.is_reply else "request" if msg.is_request else "announcement"
        print(f"{kind} {msg.name} {msg.data!r} from endpoint {msg.from_}", flush=True)
        if msg.lost:
            print(f"(lost {msg.lost} before this one: my queue was full)")
