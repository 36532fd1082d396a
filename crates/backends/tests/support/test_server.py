"""Tiny HTTP server used as an instance by rampart-backends' tests.

GET /healthz answers 200 (503 with --unhealthy), GET / answers a line that echoes
what the backend passed in: version, instance, port, GREETING env var and cwd.
"""
import argparse
import http.server
import os
import sys

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--version", default="")
parser.add_argument("--instance", default="")
parser.add_argument("--unhealthy", action="store_true")
parser.add_argument("--spam-bytes", type=int, default=0)
args = parser.parse_args()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz":
            status, body = (503, "unhealthy") if args.unhealthy else (200, "ok")
        elif self.path == "/":
            status = 200
            body = "version={} instance={} port={} greeting={} cwd={}".format(
                args.version, args.instance, args.port,
                os.environ.get("GREETING", ""), os.getcwd())
        else:
            status, body = 404, "not found"
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_):
        pass


print("test server starting on port {}".format(args.port), file=sys.stderr, flush=True)
if args.spam_bytes:
    line = "x" * 99 + "\n"
    sys.stdout.write(line * (args.spam_bytes // 100))
    sys.stdout.flush()
server = http.server.HTTPServer(("127.0.0.1", args.port), Handler)
server.serve_forever()
