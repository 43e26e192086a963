"""The machine's floor for a loopback round trip between two processes: one byte sent and echoed back
20,000 times over TCP (TCP_NODELAY). Run it as is (the processes may sit on different cores) and under
`taskset -c 0` (one core) to see what waking the other core costs on this machine."""

import os
import socket
import time

listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(1)
port = listener.getsockname()[1]
if os.fork() == 0:
    echo, _ = listener.accept()
    echo.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while data := echo.recv(64):
        echo.sendall(data)
    os._exit(0)
client = socket.create_connection(("127.0.0.1", port))
client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
times = []
for _ in range(20000):
    start = time.perf_counter()
    client.sendall(b"x")
    client.recv(64)
    times.append(time.perf_counter() - start)
client.close()
times.sort()
print(f"loopback ping-pong p50 {times[len(times) // 2] * 1e6:.1f} us, p99 {times[len(times) * 99 // 100] * 1e6:.1f} us")
