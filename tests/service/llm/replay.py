"""A scripted OpenAI-compatible HTTP server: for the answers a real one cannot be made to give
(refusals, vLLM's own fields)."""

from __future__ import annotations

import http.server
import json
import threading


class ReplayServer(http.server.ThreadingHTTPServer):
    """An HTTP server that answers POSTs with the given (status, JSON body) pairs, the last one
    repeated, and keeps the JSON bodies of the requests it got; GET /v1/models lists models
    (404 when there are none)."""

    def __init__(self, *answers: tuple[int, dict], models: list[dict] | None = None) -> None:
        self.answers, self.requests = list(answers), []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                outer.requests.append(json.loads(self.rfile.read(
                    int(self.headers.get("Content-Length", 0)))))
                status, answer = outer.answers[min(len(outer.requests), len(outer.answers)) - 1]
                self.reply(status, answer)

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/v1/models" and models:
                    self.reply(200, {"object": "list", "data": models})
                else:
                    self.reply(404, error(f"no {self.path} here"))

            def reply(self, status: int, answer: dict) -> None:
                body = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        """Returns the server's /v1 base URL."""
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def stop(self) -> None:
        """Stops serving and frees the port."""
        self.shutdown()
        self.server_close()


def error(message: str) -> dict:
    """Returns an OpenAI-style error body."""
    return {"error": {"message": message, "type": "BadRequestError", "code": 400}}
