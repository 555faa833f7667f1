#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# A chat-completions server on 127.0.0.1 for the AI tests, scripted per job: DIR/scenario holds
# the name of the answer to give next; every request is appended to DIR/requests.jsonl (time,
# headers, body) so that the test can check what the daemon sent. The listening port is written
# to DIR/port. Standard library only.
#
#   ai-server.py DIR

import json
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DIR = sys.argv[1]
LOCK = threading.Lock()
COUNTS = {}

GOOD = {
    "analysis": "Two hosts probe Telnet; SSDP floods from one network.",
    "suggestions": ["Close Telnet", "Rate-limit SSDP"],
    "filters": [
        {"rule_type": "tcp", "protocol": "tcp", "dst_port": 23, "action": "drop",
         "enabled": True, "comment": "Block Telnet"},
        {"rule_type": "udp", "protocol": "udp", "src_ip": "198.51.100.0/24", "dst_port": 1900,
         "action": "drop", "enabled": True, "comment": "SSDP flood source"},
    ],
}

# The Guarder's README example answer, as it printed it.
GUARDER = {
    "analysis": "Network traffic analysis shows potential brute force attack on SSH service...",
    "suggestions": ["Implement rate limiting for SSH connections", "Block suspicious IP addresses"],
    "filters": [{"rule_type": "tcp", "protocol": "tcp", "tcp_flags": 2, "tcp_flags_mask": 2,
                 "action": "drop", "enabled": True, "comment": "Block TCP SYN scanning attacks"}],
}


def hostile():
    rules = [
        {"rule_type": "basic", "src_ip": "0.0.0.0/0", "action": "drop", "comment": "drop everything"},
        {"rule_type": "tcp", "protocol": "tcp", "src_ip": "192.0.2.10", "action": "drop",
         "comment": "the management host"},
        {"rule_type": "tcp", "protocol": "tcp", "dst_port": 22, "action": "drop",
         "comment": "no more ssh"},
        {"rule_type": "tcp", "protocol": "tcp", "dst_port": 8080, "action": "drop",
         "frobnicate": 1, "comment": "unknown key"},
        {"rule_type": "tcp", "protocol": "tcp", "dst_port": 8081, "action": "drop",
         "force": True, "comment": "forced"},
        {"rule_type": "tcp", "protocol": "tcp", "src_ip": "300.1.2.3", "action": "drop"},
        {"rule_type": "udp", "protocol": "udp", "dst_port": 70000, "action": "drop"},
    ]
    rules += [{"rule_type": "tcp", "protocol": "tcp", "dst_port": 10000 + i, "action": "drop",
               "comment": "port %d" % (10000 + i)} for i in range(493)]
    return {"analysis": "Everything is hostile.", "suggestions": [], "filters": rules}


def completion(content, finish="stop", refusal=None):
    msg = {"role": "assistant", "content": content}
    if refusal is not None:
        msg["refusal"] = refusal
    return {"id": "chatcmpl-test", "object": "chat.completion", "model": "test-model-x",
            "choices": [{"index": 0, "message": msg, "finish_reason": finish}],
            "usage": {"prompt_tokens": 300, "completion_tokens": 21, "total_tokens": 321}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, obj=None, raw=None, headers=()):
        data = raw if raw is not None else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length).decode("utf-8", "replace")
        with open(os.path.join(DIR, "scenario")) as f:
            scenario = f.read().strip()
        with LOCK:
            n = COUNTS.get(scenario, 0) + 1
            COUNTS[scenario] = n
            with open(os.path.join(DIR, "requests.jsonl"), "a") as f:
                f.write(json.dumps({"time": time.time(), "scenario": scenario, "path": self.path,
                                    "headers": dict(self.headers.items()), "body": body}) + "\n")
        getattr(self, "s_" + scenario.replace("-", "_"))(n, body)

    # --- answers ---
    def s_good(self, n, body):
        self.reply(200, completion(json.dumps(GOOD)))

    s_injection = s_good

    def s_guarder(self, n, body):
        self.reply(200, completion(json.dumps(GUARDER)))

    def s_shadow(self, n, body):
        with open(os.path.join(DIR, "shadow.json")) as f:
            self.reply(200, completion(f.read()))

    def s_fenced(self, n, body):
        self.reply(200, completion("Here is my answer:\n```json\n" + json.dumps(GOOD, indent=2)
                                   + "\n```\nStay safe."))

    def s_schema(self, n, body):
        self.reply(200, completion(json.dumps({"analysis": 42, "filters": "all of them"})))

    def s_hostile(self, n, body):
        self.reply(200, completion(json.dumps(hostile())))

    def s_garbage(self, n, body):
        self.reply(200, raw=b"<html><body>502 Bad Gateway (or so)</body></html>")

    def s_truncated(self, n, body):
        data = json.dumps(completion(json.dumps(GOOD))).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 3])
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def s_huge(self, n, body):
        size = 10 * 1024 * 1024
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        chunk = b" " * 65536
        try:
            for _ in range(size // len(chunk)):
                self.wfile.write(chunk)
        except OSError:
            pass
        self.close_connection = True

    def s_length(self, n, body):
        self.reply(200, completion('{"analysis": "The traffic shows', finish="length"))

    def s_refusal(self, n, body):
        self.reply(200, completion(None, refusal="I can't help with that request."))

    def s_sse(self, n, body):
        text = json.dumps(GOOD)
        parts = [text[i:i + 40] for i in range(0, len(text), 40)]
        out = []
        for i, p in enumerate(parts):
            chunk = {"id": "c", "object": "chat.completion.chunk", "model": "test-model-x",
                     "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]}
            out.append("data: " + json.dumps(chunk) + "\n\n")
        out.append("data: " + json.dumps({"choices": [{"index": 0, "delta": {},
                                                       "finish_reason": "stop"}],
                                          "usage": {"total_tokens": 99}}) + "\n\n")
        out.append("data: [DONE]\n\n")
        data = "".join(out).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def s_e401(self, n, body):
        self.reply(401, {"error": {"message": "Incorrect API key provided: sk-t***",
                                   "type": "invalid_request_error", "code": "invalid_api_key"}})

    def s_e500(self, n, body):
        self.reply(500, {"error": {"message": "The server had an error while processing"}})

    def s_e429(self, n, body):
        if n == 1:
            self.reply(429, {"error": {"message": "Rate limit reached"}},
                       headers=[("Retry-After", "2")])
        else:
            self.reply(200, completion(json.dumps(GOOD)))

    def s_format(self, n, body):
        fmt = json.loads(body).get("response_format", {}).get("type")
        if fmt == "json_schema":
            self.reply(400, {"error": {"message": "response_format json_schema is not supported "
                                       "by this model"}})
        else:
            self.reply(200, completion(json.dumps(GOOD)))

    def s_hang(self, n, body):
        # Accepts, reads the request, never answers (the daemon's timeout or Cancel ends it).
        time.sleep(300)
        self.close_connection = True

    def s_drip(self, n, body):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "100000")
        self.end_headers()
        try:
            for _ in range(30):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(1)
        except OSError:
            pass
        self.close_connection = True


class Server(ThreadingHTTPServer):
    daemon_threads = True


def main():
    srv = Server(("127.0.0.1", 0), Handler)
    with open(os.path.join(DIR, "port.tmp"), "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(os.path.join(DIR, "port.tmp"), os.path.join(DIR, "port"))
    # Bounded: the test stops it, and it stops by itself after 10 minutes at most.
    stop = threading.Timer(600, srv.shutdown)
    stop.daemon = True
    stop.start()
    srv.serve_forever()


main()
