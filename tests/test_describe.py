"""microclip/text/describe.py and its modules against a real OpenAI-compatible HTTP server.

The server (``FakeChatServer``) runs on 127.0.0.1 in a thread and answers
``POST /v1/chat/completions`` the way the API does; the real openai client reaches it
through ``OPENAI_BASE_URL``. Scripted replies (429, 500, slow, malformed answers, broken
200 bodies, kill) drive the failure paths, once each (``script``) or for every request
naming a class (``fault_for``); 429/500 carry ``retry-after-ms`` so the SDK's own backoff
stays fast, and the timeouts are fractions of a second.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from microclip.errors import TextError
from microclip.text.describe import (
    GenerationConfig,
    MalformedAnswerError,
    MissingAPIKeyError,
    ReplayMissError,
    RequestFailedError,
    describe_dataset,
    load_prompt_style,
    load_questions,
    parse_numbered_list,
    plan_requests,
)
from microclip.text.llm_cache import LLMCache, request_key

REPO = Path(__file__).resolve().parents[1]
QUESTIONS_DIR = REPO / "descriptions" / "questions"
STYLES = QUESTIONS_DIR / "prompt_styles.yaml"
CLASSNAMES_DIR = REPO / "microclip" / "data" / "classnames"
API_KEY = "sk-test-SECRET-0123456789abcdef"
CLASSES = ["red fox", "snow_owl", "Sphynx"]


class FakeChatServer:
    """An OpenAI-compatible chat-completions endpoint with scripted failures."""

    def __init__(self) -> None:
        self.requests: list[dict] = []  # JSON bodies, in arrival order
        self.auth_headers: list[str] = []
        self.script: deque[str] = deque()  # next replies, one of ACTIONS
        self.fault_for: tuple[str, str] | None = None  # (prompt text, action): every time
        self.slow_s = 1.0  # how long "slow" waits before answering
        self.kill_pid: int | None = None  # SIGKILL this process at request kill_at
        self.kill_at = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length))
                user = body["messages"][-1]["content"]
                with server.lock:
                    server.requests.append(body)
                    server.auth_headers.append(self.headers.get("authorization", ""))
                    count = len(server.requests)
                    action = server.next_action(user)
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                if server.kill_pid is not None and count == server.kill_at:
                    os.kill(server.kill_pid, signal.SIGKILL)
                    return  # the client is gone; the request stays unanswered
                if action == "slow":  # longer than the client's timeout
                    time.sleep(server.slow_s)
                if action in ("429", "500"):
                    error = {"error": {"message": "try again", "type": "server_error"}}
                    return self._send(int(action), error, {"retry-after-ms": "5"})
                answer = completion(body, user, malformed=action == "malformed")
                if action in BROKEN_BODIES:
                    data, kind = BROKEN_BODIES[action](answer)
                    return self._send_bytes(200, data, kind)
                self._send(200, answer)

            def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
                self._send_bytes(status, json.dumps(payload).encode(), "application/json", headers)

            def _send_bytes(
                self, status: int, data: bytes, kind: str, headers: dict | None = None
            ) -> None:
                try:
                    self.send_response(status)
                    self.send_header("content-type", kind)
                    self.send_header("content-length", str(len(data)))  # framed: no read error
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and hung up

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def next_action(self, user: str) -> str:
        """``fault_for`` wins for the prompts it names; else the script's next reply."""
        if self.fault_for is not None and self.fault_for[0] in user:
            action = self.fault_for[1]
        else:
            action = self.script.popleft() if self.script else "ok"
        assert action in ACTIONS, action  # a typo in a test fails its requests loudly
        return action

    def user_prompts(self) -> list[str]:
        return [r["messages"][-1]["content"] for r in self.requests]


# 200 answers whose body is not a chat completion: (body bytes, content type).
BROKEN_BODIES = {
    "truncated": lambda answer: (json.dumps(answer).encode()[:37], "application/json"),
    "nochoices": lambda answer: (json.dumps({"id": answer["id"]}).encode(), "application/json"),
    "html": lambda answer: (b"<html><body>502 Bad Gateway</body></html>", "text/html"),
    "null": lambda answer: (b"null", "application/json"),
}
ACTIONS = ("ok", "429", "500", "slow", "malformed", *BROKEN_BODIES)


def completion(body: dict, user: str, malformed: bool) -> dict:
    """A chat.completion object: n choices, each in the form the request asks for."""
    choices = []
    for index in range(body.get("n", 1)):
        lines = [f"Sentence {k} of answer {index} to: {user}" for k in (1, 2, 3)]
        if malformed:
            content = "Sorry, I am not sure what you mean."
            if body.get("response_format") is None:
                content = "Sorry, no list today."
        elif body.get("response_format"):
            content = json.dumps({"sentences": lines})
        elif "numbered" in body["messages"][0]["content"]:
            content = "\n".join(f"{k}. {line}" for k, line in enumerate(lines, start=1))
        else:
            content = lines[0]
        choices.append(
            {
                "index": index,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        )
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1700000000,
        "model": body["model"],
        "choices": choices,
        "usage": {"prompt_tokens": 10, "completion_tokens": 30, "total_tokens": 40},
    }


@pytest.fixture
def server(monkeypatch):
    srv = FakeChatServer()
    srv.thread.start()
    monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


@pytest.fixture
def questions(tmp_path) -> Path:
    path = tmp_path / "questions.yaml"
    path.write_text(
        'questions:\n  - "What does a {classname} look like?"\n'
        '  - "How can you identify a {classname}?"\n',
        encoding="utf-8",
    )
    return path


def run(tmp_path: Path, questions: Path, **overrides):
    args = {
        "dataset": "toy",
        "classes": CLASSES,
        "questions_path": questions,
        "styles_path": STYLES,
        "generation": {"style": "numbered", "model": "test-model", "sentences": 3},
        "cache_dir": tmp_path / "cache",
        "out_path": tmp_path / "out" / "toy.json",
        "manifest_path": tmp_path / "out" / "toy.manifest.json",
        "set_name": "test",
        "mode": "record",
        "max_retries": 2,
        "malformed_retries": 1,
        "timeout_s": 10.0,
    }
    args.update(overrides)
    return describe_dataset(**args)


def test_record_writes_class_order_file_and_manifest(server, tmp_path, questions):
    result = run(tmp_path, questions)
    written = json.loads((tmp_path / "out" / "toy.json").read_text())
    assert list(written) == CLASSES == list(result)
    assert all(len(sentences) == 2 * 3 for sentences in written.values())  # 2 questions x 3
    assert "Include 'snow_owl' in each sentence." in written["snow_owl"][0]
    assert len(server.requests) == len(CLASSES) * 2
    first = server.requests[0]
    assert first["response_format"]["type"] == "json_schema"
    assert first["model"] == "test-model" and first["seed"] == 0 and first["n"] == 1
    assert "exactly 3 short" in first["messages"][0]["content"]
    manifest = json.loads((tmp_path / "out" / "toy.manifest.json").read_text())
    assert manifest["requests"] == 6 and manifest["recorded_now"] == 6
    assert manifest["sentences_per_class"] == {"min": 6, "max": 6, "total": 18}
    assert manifest["overlong_sentences"] == 0
    entries = list((tmp_path / "cache").rglob("*.json"))
    assert len(entries) == 6
    entry = json.loads(entries[0].read_text())
    assert {"key", "request", "response", "created"} <= set(entry)
    assert entry["key"] == request_key(entry["request"]) == entries[0].stem


def test_replay_makes_zero_requests_and_needs_no_key(server, tmp_path, questions, monkeypatch):
    recorded = run(tmp_path, questions)
    server.requests.clear()
    monkeypatch.delenv("OPENAI_API_KEY")
    (tmp_path / "out" / "toy.json").unlink()
    replayed = run(tmp_path, questions, mode="replay")
    assert server.requests == []
    assert replayed == recorded
    assert json.loads((tmp_path / "out" / "toy.json").read_text()) == recorded


def test_replay_miss_is_an_error_naming_the_missing_classes(server, tmp_path, questions):
    run(tmp_path, questions, classes=CLASSES[:2])
    server.requests.clear()
    with pytest.raises(ReplayMissError, match=r"2 of 6 requests .*'Sphynx'") as info:
        run(tmp_path, questions, mode="replay")
    message = str(info.value)
    assert "red fox" not in message
    assert "\n" not in message and "rule describe" in message and "mode: record" in message
    assert server.requests == []
    assert list(json.loads((tmp_path / "out" / "toy.json").read_text())) == CLASSES[:2]


def test_rate_limit_and_server_error_are_retried_by_the_sdk(server, tmp_path, questions):
    server.script.extend(["429", "500"])
    result = run(tmp_path, questions)
    assert len(server.requests) == 6 + 2  # the first request was sent three times
    assert server.user_prompts()[0] == server.user_prompts()[1] == server.user_prompts()[2]
    assert list(result) == CLASSES


def test_timeout_is_retried_by_the_sdk(server, tmp_path, questions):
    server.script.append("slow")
    result = run(tmp_path, questions, timeout_s=0.3)
    assert len(server.requests) == 6 + 1
    assert list(result) == CLASSES


def test_killed_run_resumes_asking_only_unanswered_requests(server, tmp_path, questions):
    code = (
        "import json, sys; from pathlib import Path\n"
        "from microclip.text.describe import describe_dataset\n"
        "a = json.loads(sys.argv[1])\n"
        "describe_dataset(dataset='toy', classes=a['classes'], questions_path=Path(a['q']),"
        " styles_path=Path(a['styles']), generation=a['gen'], cache_dir=Path(a['cache']),"
        " out_path=Path(a['out']), mode='record', max_retries=0)\n"
    )
    gen = {"style": "numbered", "model": "test-model", "sentences": 3}
    args = {
        "classes": CLASSES,
        "q": str(questions),
        "styles": str(STYLES),
        "gen": gen,
        "cache": str(tmp_path / "cache"),
        "out": str(tmp_path / "out" / "toy.json"),
    }
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", code, json.dumps(args)], env=env)
    server.kill_pid, server.kill_at = proc.pid, 4  # killed while asking request 4 of 6
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert len(server.requests) == 4
    assert not (tmp_path / "out" / "toy.json").exists()
    assert len(list((tmp_path / "cache").rglob("*.json"))) == 3  # whole entries only
    assert not list((tmp_path / "cache").rglob("*.tmp"))
    first_run = server.user_prompts()

    server.kill_pid = None
    server.requests.clear()
    run(tmp_path, questions, generation=gen)
    assert server.user_prompts() == first_run[3:] + [
        p for p in _all_prompts(questions, gen) if p not in first_run
    ]
    assert len(server.requests) == 3
    assert list(json.loads((tmp_path / "out" / "toy.json").read_text())) == CLASSES


def _all_prompts(questions: Path, gen: dict) -> list[str]:
    style = load_prompt_style(STYLES, gen["style"])
    config = GenerationConfig.from_mapping(gen, where="test")
    plans = plan_requests(CLASSES, load_questions(questions), style, config)
    return [p.request["messages"][-1]["content"] for p in plans]


def test_malformed_answer_is_retried_then_reported_and_not_written(server, tmp_path, questions):
    server.fault_for = ("'snow_owl'", "malformed")
    with pytest.raises(MalformedAnswerError, match=r"2 request\(s\).*snow_owl") as info:
        run(tmp_path, questions, malformed_retries=2)
    message = str(info.value)
    assert "\n" not in message
    assert "'snow_owl', question 2 'How can you identify a snow_owl?'" in message
    assert "4 of 6 requests are answered and cached" in message
    owl = [p for p in server.user_prompts() if "snow_owl" in p]
    assert len(owl) == 2 * 3  # 2 questions x (1 try + 2 retries)
    assert not (tmp_path / "out" / "toy.json").exists()
    assert not (tmp_path / "out" / "toy.manifest.json").exists()
    cached = [json.loads(p.read_text()) for p in (tmp_path / "cache").rglob("*.json")]
    assert len(cached) == 4  # the well-formed answers of the other classes are kept
    assert not any("Sorry" in json.dumps(entry) for entry in cached)


def test_malformed_answer_once_is_asked_again(server, tmp_path, questions):
    server.script.append("malformed")
    result = run(tmp_path, questions, malformed_retries=1)
    assert len(server.requests) == 7
    assert all(len(s) == 6 for s in result.values())


OWL_Q1 = "'snow_owl', question 1 'What does a snow_owl look like?'"


@pytest.mark.parametrize(
    "action, max_retries, cause, answered, sent",
    [
        # no answer: the run stops at snow_owl's first question, red fox's two are cached
        ("429", 1, "HTTP 429 (rate limited or out of quota): try again, after 2 attempt(s)", 2, 4),
        ("500", 1, "HTTP 500 (server error): try again, after 2 attempt(s)", 2, 4),
        ("slow", 0, "timed out after 0.25 s, after 1 attempt(s)", 2, 3),
        # broken 200 bodies: asked again, reported at the end, Sphynx is still answered
        ("truncated", 1, "malformed body: not JSON", 4, 2 + 2 * 2 + 2),
        ("nochoices", 1, "malformed body: no 'choices' in the response", 4, 8),
    ],
)
def test_request_that_keeps_failing_is_one_line_naming_class_question_and_cache(
    server, tmp_path, questions, action, max_retries, cause, answered, sent
):
    server.fault_for, server.slow_s = ("'snow_owl'", action), 0.6
    with pytest.raises(TextError) as info:
        run(tmp_path, questions, max_retries=max_retries, malformed_retries=1, timeout_s=0.25)
    message = str(info.value)
    assert "\n" not in message and API_KEY not in message
    assert OWL_Q1 in message and cause in message
    assert f"{answered} of 6 requests are answered and cached in {tmp_path / 'cache'}" in message
    assert "rerun the same command (or rule describe)" in message
    assert len(server.requests) == sent
    assert len(list((tmp_path / "cache").rglob("*.json"))) == answered
    assert not (tmp_path / "out" / "toy.json").exists()


def test_unreachable_server_is_one_line_naming_the_first_request(tmp_path, questions, monkeypatch):
    with socket.socket() as sock:  # a port that nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    with pytest.raises(RequestFailedError) as info:
        run(tmp_path, questions, max_retries=0, timeout_s=2.0)
    message = str(info.value)
    assert "\n" not in message
    assert f"could not connect to http://127.0.0.1:{port}/v1" in message
    assert "'red fox', question 1 'What does a red fox look like?'" in message
    assert "0 of 6 requests are answered and cached" in message


@pytest.mark.parametrize("action", list(BROKEN_BODIES))
def test_broken_200_body_is_asked_again_and_the_good_answer_kept(
    server, tmp_path, questions, action
):
    server.script.append(action)
    result = run(tmp_path, questions, malformed_retries=1)
    assert len(server.requests) == 7
    assert server.user_prompts()[0] == server.user_prompts()[1]
    assert all(len(s) == 6 for s in result.values())
    cached = [json.loads(p.read_text()) for p in (tmp_path / "cache").rglob("*.json")]
    assert len(cached) == 6 and all(entry["response"]["choices"] for entry in cached)


def test_rerun_after_a_failure_sends_only_the_unanswered_requests(server, tmp_path, questions):
    server.fault_for = ("'snow_owl'", "500")
    with pytest.raises(RequestFailedError, match="2 of 6 requests are answered and cached"):
        run(tmp_path, questions, max_retries=0)
    assert len(server.requests) == 3  # red fox x 2, then snow_owl's first question failed
    server.fault_for = None
    server.requests.clear()
    result = run(tmp_path, questions, max_retries=0)
    gen = {"style": "numbered", "model": "test-model", "sentences": 3}
    assert server.user_prompts() == _all_prompts(questions, gen)[2:]  # not red fox again
    assert list(result) == CLASSES and all(len(s) == 6 for s in result.values())
    manifest = json.loads((tmp_path / "out" / "toy.manifest.json").read_text())
    assert manifest["recorded_now"] == 4


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("temperature", "hot", "expected a number"),
        ("seed", True, "expected an integer or null"),
        ("structured", "yes", "expected true/false"),
        ("samples_per_question", 2.5, "expected an integer"),
        ("sentences", 0, "expected an integer >= 1"),
        ("model", "", "expected a model name"),
    ],
)
def test_generation_setting_of_the_wrong_type_is_a_text_error(key, value, expected):
    with pytest.raises(TextError) as info:
        GenerationConfig.from_mapping({key: value}, where="descriptions.generate.x")
    assert f"descriptions.generate.x.{key} = {value!r}: {expected}" in str(info.value)


def test_describe_names_the_config_key_of_a_wrong_setting(tmp_path, questions):
    with pytest.raises(
        TextError, match=r"^descriptions\.generate\.test\.sentences = 'ten': expected an integer$"
    ):
        run(tmp_path, questions, generation={"sentences": "ten"}, mode="replay")
    with pytest.raises(TextError, match=r"descriptions\.llm\.timeout_s = 0: expected a number > 0"):
        run(tmp_path, questions, timeout_s=0, mode="replay")


def test_generation_config_takes_yaml_spellings():
    config = GenerationConfig.from_mapping({"temperature": 1, "seed": None}, where="x")
    assert config.temperature == 1.0 and isinstance(config.temperature, float)
    assert config.seed is None
    with pytest.raises(TextError, match="expected a mapping"):
        GenerationConfig.from_mapping(["style"], where="x")  # type: ignore[arg-type]


def test_generation_config_imports_without_torch_or_the_sdk():
    code = (
        "import sys\n"
        "from microclip.text.describe import GenerationConfig\n"
        "GenerationConfig.from_mapping({'style': 'cupl'}, where='x')\n"
        "print([m for m in ('torch', 'openai', 'open_clip') if m in sys.modules])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_corrupt_cache_entry_is_a_text_error_naming_the_file(tmp_path):
    cache = LLMCache(tmp_path)
    request = {"model": "m", "messages": [], "schema": None, "temperature": 0.1, "seed": 0,
               "n": 1, "max_tokens": None}  # fmt: skip
    entry = cache.put(request, {"choices": []})
    path = cache.path_for(entry.key)
    path.write_text(json.dumps({"key": entry.key}), encoding="utf-8")  # fields missing
    with pytest.raises(TextError, match=rf"{path.name}: corrupt cache entry .*rule describe"):
        cache.get(entry.key)


def test_missing_api_key_in_record_mode_is_a_clear_error(server, tmp_path, questions, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(MissingAPIKeyError, match="OPENAI_API_KEY is not set") as info:
        run(tmp_path, questions)
    message = str(info.value)
    assert "\n" not in message and "'red fox', 'snow_owl', 'Sphynx'" in message
    assert "rule describe" in message
    assert server.requests == []


def test_api_key_never_reaches_a_written_file(server, tmp_path, questions):
    log_file = tmp_path / "describe.log"
    handler = logging.FileHandler(log_file)
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    try:
        server.script.extend(["429", "malformed"])
        run(tmp_path, questions)
    finally:
        root.removeHandler(handler)
        handler.close()
        root.setLevel(old_level)
    assert all(h == f"Bearer {API_KEY}" for h in server.auth_headers)  # it was used ...
    assert "asked 6/6" in log_file.read_text()
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) >= 9  # 6 cache entries, output, manifest, log
    for path in written:  # ... and is in no file
        assert API_KEY not in path.read_text(encoding="utf-8", errors="replace"), path


def test_unstructured_answers_are_parsed_from_a_numbered_list(server, tmp_path, questions):
    result = run(
        tmp_path,
        questions,
        generation={"style": "numbered", "model": "m", "sentences": 3, "structured": False},
    )
    assert all("response_format" not in body for body in server.requests)
    assert result["red fox"][0].startswith("Sentence 1 of answer 0")
    assert all(len(s) == 6 for s in result.values())


def test_cupl_style_takes_one_sentence_per_sample(server, tmp_path, questions):
    generation = {"style": "cupl", "model": "m", "temperature": 0.99, "samples_per_question": 4}
    result = run(tmp_path, questions, generation=generation)
    assert all(body["n"] == 4 and "response_format" not in body for body in server.requests)
    assert all(len(s) == 2 * 4 for s in result.values())


def test_parse_numbered_list_joins_continuation_lines():
    text = "Here you go:\n1. A fox is red.\n2) It has a\n   bushy tail.\n\n3: Black legs."
    assert parse_numbered_list(text) == ["A fox is red.", "It has a bushy tail.", "Black legs."]
    assert parse_numbered_list("no list at all") == []


def test_cache_key_is_canonical_and_covers_every_request_field(tmp_path):
    request = {"model": "m", "messages": [{"role": "user", "content": "x"}], "schema": None,
               "temperature": 0.1, "seed": 0, "n": 1, "max_tokens": None}  # fmt: skip
    reordered = dict(reversed(list(request.items())))
    assert request_key(request) == request_key(reordered)
    for field, value in [("model", "m2"), ("temperature", 0.2), ("seed", 1), ("n", 2)]:
        assert request_key({**request, field: value}) != request_key(request), field
    cache = LLMCache(tmp_path)
    entry = cache.put(request, {"choices": []})
    assert entry.key in cache and cache.get(entry.key).request == request


def test_unknown_generation_setting_is_rejected_with_the_allowed_ones(tmp_path, questions):
    with pytest.raises(ValueError, match=r"unknown generation setting\(s\) \['temprature'\]"):
        run(tmp_path, questions, generation={"temprature": 0.5}, mode="replay")


QUESTION_FILES = sorted(p for p in QUESTIONS_DIR.glob("*.yaml") if p.name != "prompt_styles.yaml")


@pytest.mark.parametrize("path", QUESTION_FILES, ids=lambda p: p.stem)
def test_question_file_loads(path):
    assert len(load_questions(path)) >= 3


def test_every_dataset_with_class_names_has_a_question_file():
    datasets = {p.stem for p in CLASSNAMES_DIR.glob("*.json")}
    assert datasets, "no class-name files found"
    assert datasets <= {p.stem for p in QUESTION_FILES}


@pytest.mark.parametrize("name", ["cupl", "numbered"])
def test_prompt_styles_load(name):
    style = load_prompt_style(STYLES, name)
    assert "{question}" in style.user
