#!/usr/bin/env python3
"""A smart-HTTP git remote for the git proxy tests: HTTPS (test CA) on 127.0.0.1, running
git http-backend as CGI, requiring `Authorization: Basic base64(x-access-token:<token>)`.
Every request is appended to --log as one JSON line {method, path, query, authorization}.
Paths under /moved/ answer 302 to --redirect + the same path and query.
Prints the port on stdout once listening."""
import argparse, base64, http.server, json, os, ssl, subprocess, sys, threading

ap = argparse.ArgumentParser()
ap.add_argument("--root", required=True)
ap.add_argument("--token", required=True)
ap.add_argument("--log", required=True)
ap.add_argument("--cert", required=True)
ap.add_argument("--key", required=True)
ap.add_argument("--redirect", default="")
args = ap.parse_args()
expected = "Basic " + base64.b64encode(("x-access-token:" + args.token).encode()).decode()
log_lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def record(self, path, query):
        with log_lock, open(args.log, "a") as f:
            f.write(json.dumps({"method": self.command, "path": path, "query": query,
                                "authorization": self.headers.get("Authorization")}) + "\n")

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def simple(self, code, text, extra=()):
        body = text.encode()
        self.send_response(code)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def handle_any(self):
        path, _, query = self.path.partition("?")
        self.record(path, query)
        body = self.read_body() if self.command == "POST" else b""
        if path.startswith("/moved/") and args.redirect:
            return self.simple(302, "moved", [("Location", args.redirect + self.path)])
        if self.headers.get("Authorization") != expected:
            return self.simple(401, "unauthorized", [("WWW-Authenticate", 'Basic realm="t"')])
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "GIT_PROJECT_ROOT": args.root, "GIT_HTTP_EXPORT_ALL": "1",
               "REMOTE_USER": "x-access-token", "REMOTE_ADDR": "127.0.0.1",
               "REQUEST_METHOD": self.command, "PATH_INFO": path, "QUERY_STRING": query,
               "CONTENT_TYPE": self.headers.get("Content-Type", ""),
               "CONTENT_LENGTH": str(len(body)),
               "GIT_HTTP_MAX_REQUEST_BUFFER": "1000M"}
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        p = subprocess.Popen(["git", "http-backend"], env=env, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        def feed():
            try:
                p.stdin.write(body)
                p.stdin.close()
            except BrokenPipeError:
                pass
        threading.Thread(target=feed, daemon=True).start()
        status, headers = 200, []
        while True:
            line = p.stdout.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            k, _, v = line.decode().rstrip("\r\n").partition(":")
            if k.lower() == "status":
                status = int(v.strip().split()[0])
            else:
                headers.append((k, v.strip()))
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        while True:
            chunk = p.stdout.read1(256 * 1024)
            if not chunk:
                break
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r\n")
        p.wait()

    do_GET = handle_any
    do_POST = handle_any


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
srv.daemon_threads = True
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(args.cert, args.key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
