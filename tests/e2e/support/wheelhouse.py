#!/usr/bin/env python3
"""PEP 503 index of a directory of wheels, and a loopback HTTP server for it.

    wheelhouse.py index DIR
        DIR/files/*.whl -> DIR/simple/index.html and DIR/simple/<project>/index.html
    wheelhouse.py serve DIR PIDFILE PORTFILE [OWNER_PID]
        serves DIR on 127.0.0.1 (a free port), writes its pid and port, runs
        until SIGTERM/SIGINT, or until process OWNER_PID has ended.

Used by wheelhouse.sh; standard library only.
"""
import functools
import hashlib
import html
import http.server
import os
import re
import signal
import sys
import threading
import time


def normalize(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def project_of(filename):
    # {distribution}-{version}(-{build})?-{python}-{abi}-{platform}.whl
    if filename.endswith(".whl"):
        return normalize(filename.split("-")[0])
    # sdist: {name}-{version}.tar.gz, the name may contain dashes
    stem = re.sub(r"\.(tar\.gz|zip)$", "", filename)
    return normalize(stem.rsplit("-", 1)[0])


def build_index(root):
    files_dir = os.path.join(root, "files")
    simple = os.path.join(root, "simple")
    projects = {}
    for name in sorted(os.listdir(files_dir)):
        if name.endswith((".whl", ".tar.gz", ".zip")):
            projects.setdefault(project_of(name), []).append(name)
    os.makedirs(simple, exist_ok=True)
    for project, names in projects.items():
        os.makedirs(os.path.join(simple, project), exist_ok=True)
        links = []
        for name in names:
            with open(os.path.join(files_dir, name), "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            links.append(
                '<a href="../../files/%s#sha256=%s">%s</a><br/>'
                % (html.escape(name), digest, html.escape(name))
            )
        write(os.path.join(simple, project, "index.html"), project, links)
    write(
        os.path.join(simple, "index.html"),
        "Simple index",
        ['<a href="%s/">%s</a><br/>' % (p, p) for p in sorted(projects)],
    )
    print("indexed %d projects in %s" % (len(projects), simple), file=sys.stderr)


def write(path, title, lines):
    body = "\n".join(lines)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(
            "<!DOCTYPE html>\n<html><head><meta name=\"pypi:repository-version\" "
            "content=\"1.0\"><title>%s</title></head><body>\n%s\n</body></html>\n"
            % (html.escape(title), body)
        )
    os.replace(tmp, path)


class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.log_date_time_string(), fmt % args))


def watch(owner, server):
    """Stops the server once process `owner` is gone (a test run that ended or was killed)."""
    while True:
        time.sleep(1)
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            server.shutdown()
            return
        except PermissionError:
            pass


def serve(root, pidfile, portfile, owner=None):
    handler = functools.partial(Handler, directory=root)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    port = server.server_address[1]
    if owner is not None:
        threading.Thread(target=watch, args=(owner, server), daemon=True).start()

    def stop(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    for path, value in ((pidfile, os.getpid()), (portfile, port)):
        with open(path + ".tmp", "w") as f:
            f.write("%d\n" % value)
        os.replace(path + ".tmp", path)
    print("serving %s on http://127.0.0.1:%d/" % (root, port), file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        for path in (pidfile, portfile):
            try:
                os.remove(path)
            except FileNotFoundError:
                pass


def main(argv):
    if len(argv) == 3 and argv[1] == "index":
        build_index(argv[2])
    elif len(argv) in (5, 6) and argv[1] == "serve":
        serve(argv[2], argv[3], argv[4], int(argv[5]) if len(argv) == 6 else None)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
