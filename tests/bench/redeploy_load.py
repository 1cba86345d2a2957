"""Request loop and report of tests/bench/redeploy.sh (Python's standard library only).

run: CLIENTS threads alternate GET / and GET <its stylesheet>, one thread posts 4 MiB
uploads slowly (64 KiB every 60 ms, about 4 s each), all over HTTPS to localhost on
127.0.0.1 trusting --ca, one new connection per request, until the --stop file exists
(at most 15 minutes or 200,000 requests). Each request is one line of --out:
`<kind> <start> <end> <ok> <what went wrong, for a failure>`.

report: for each line of --marks (`<label> <start> <served> <returned> <end>`, epoch seconds),
the requests that started in [start, end]: count, failed, p99 latency of the page requests;
the longest time in [start, end] without a successful response ending; and the wall times
start -> new page served and start -> command returned.
"""

import argparse
import http.client
import re
import socket
import ssl
import threading
import time
import uuid

MAX_SECONDS = 900
MAX_REQUESTS = 200_000


class Site:
    def __init__(self, port, ca):
        self.port = port
        self.context = ssl.create_default_context(cafile=ca)

    def connection(self):
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        conn = http.client.HTTPSConnection("localhost", self.port, context=self.context, timeout=30)
        conn.sock = self.context.wrap_socket(sock, server_hostname="localhost")
        return conn

    def get(self, path, headers=None):
        conn = self.connection()
        try:
            conn.request("GET", path, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.read(), response.getheader("Set-Cookie") or ""
        finally:
            conn.close()


def pages(site, record, stop, css):
    n = 0
    while not stop():
        path = "/" if n % 2 == 0 else css
        n += 1
        start = time.time()
        try:
            status, _, _ = site.get(path)
            ok, why = status == 200, f"GET {path} {status}"
        except OSError as error:
            ok, why = False, f"GET {path} {error!r}"
        record("page", start, time.time(), ok, why)


def uploads(site, record, stop):
    while not stop():
        start = time.time()
        try:
            ok, why = upload(site)
        except OSError as error:
            ok, why = False, f"upload {error!r}"
        record("upload", start, time.time(), ok, why)


def upload(site):
    status, body, cookie = site.get("/uploads/")
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', body)
    csrf = re.search(r"csrftoken=([^;]+)", cookie)
    if status != 200 or not token or not csrf:
        return False, f"GET /uploads/ {status}"
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="csrfmiddlewaretoken"\r\n\r\n{token.group(1).decode()}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="bench.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    chunk, chunks = b"x" * 65536, 64
    conn = site.connection()
    try:
        conn.putrequest("POST", "/uploads/")
        conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
        conn.putheader("Content-Length", str(len(head) + len(chunk) * chunks + len(tail)))
        conn.putheader("Cookie", f"csrftoken={csrf.group(1)}")
        conn.putheader("Referer", f"https://localhost:{site.port}/uploads/")
        conn.endheaders()
        conn.send(head)
        for _ in range(chunks):
            conn.send(chunk)
            time.sleep(0.06)
        conn.send(tail)
        response = conn.getresponse()
        response.read()
        return response.status == 302, f"POST /uploads/ {response.status}"
    finally:
        conn.close()


def run(args):
    site = Site(args.port, args.ca)
    _, body, _ = site.get("/")
    css = re.search(rb'<link rel="stylesheet" href="([^"]+)"', body).group(1).decode()
    lines, lock, began = [], threading.Lock(), time.time()

    def record(kind, start, end, ok, why):
        with lock:
            lines.append(f"{kind} {start:.6f} {end:.6f} {int(ok)} {'' if ok else why}\n")

    def stop():
        import os

        return os.path.exists(args.stop) or time.time() - began > MAX_SECONDS or len(lines) > MAX_REQUESTS

    threads = [threading.Thread(target=pages, args=(site, record, stop, css)) for _ in range(args.clients)]
    threads.append(threading.Thread(target=uploads, args=(site, record, stop)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with open(args.out, "w") as out:
        out.writelines(lines)


def report(args):
    requests = []
    with open(args.out) as f:
        for line in f:
            kind, start, end, ok, *why = line.split(maxsplit=4)
            requests.append((kind, float(start), float(end), ok == "1", " ".join(why).strip()))
    print(
        f"{'method':<12} {'requests':>8} {'uploads':>7} {'failed':>6} {'longest gap':>11} {'p99':>8}"
        f" {'new page':>8} {'returned':>8}"
    )
    with open(args.marks) as f:
        for line in f:
            label, start, served, returned, end = (float(v) if i else v for i, v in enumerate(line.split()))
            window = sorted((r for r in requests if start <= r[1] <= end), key=lambda r: r[2])
            failed = sum(1 for r in window if not r[3])
            done = [start] + sorted(r[2] for r in requests if r[3] and start <= r[2] <= end) + [end]
            gap = max(b - a for a, b in zip(done, done[1:]))
            latencies = sorted(r[2] - r[1] for r in window if r[0] == "page")
            p99 = latencies[int(0.99 * (len(latencies) - 1))] if latencies else 0.0
            up = sum(1 for r in window if r[0] == "upload")
            print(
                f"{label:<12} {len(window):>8} {up:>7} {failed:>6} {gap:>10.2f}s {p99 * 1000:>6.0f}ms"
                f" {served - start:>7.1f}s {returned - start:>7.1f}s"
            )
            kinds = sorted({r[4] for r in window if not r[3]})
            if kinds:
                print(f"  failures of {label}: " + "; ".join(kinds))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["run", "report"])
    parser.add_argument("--port", type=int)
    parser.add_argument("--ca")
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--out")
    parser.add_argument("--stop")
    parser.add_argument("--marks")
    args = parser.parse_args()
    run(args) if args.mode == "run" else report(args)


if __name__ == "__main__":
    main()
