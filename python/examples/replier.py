"""A replier: answers every request to $.clock.time until stopped."""
import time

import busbar

bus = busbar.Bus.connect()  # $BUSBAR_SOCKET, or the default socket
with bus.open() as ep:
    ep.bind("$.clock.time", replier=True)  # the one replier for this name
    print("serving $.clock.time", flush=True)
    for request in ep:  # waits for each message; Ctrl-C stops it
        if request.wants_us_to_reply:
            ep.reply(request, time.strftime("%H:%M:%S").encode())
