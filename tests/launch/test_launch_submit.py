"""launch.submit without a cluster: token lookup, job environment, entrypoint, auth errors, CLI."""

from __future__ import annotations

import http.server
import shlex
import socket
import threading
from pathlib import Path

import pytest

from launch import submit
from launch.submit import SubmitError, entrypoint, forwarded_env, resolve_token, runtime_env

REPO = Path(__file__).resolve().parents[2]


def test_token_lookup_follows_rays_order_with_the_token_file_first(tmp_path):
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text("from-home\n")
    path_file = tmp_path / "tok"
    path_file.write_text("from-path")
    flag_file = tmp_path / "flag"
    flag_file.write_text("from-flag")
    env = {"RAY_AUTH_TOKEN": "from-env", "RAY_AUTH_TOKEN_PATH": str(path_file)}
    assert resolve_token(str(flag_file), env, home).value == "from-flag"
    assert resolve_token(None, env, home).value == "from-env"
    assert resolve_token(None, {"RAY_AUTH_TOKEN_PATH": str(path_file)}, home).value == "from-path"
    assert resolve_token(None, {}, home).value == "from-home"
    assert resolve_token(None, {}, tmp_path / "nobody") is None
    assert resolve_token(None, {**env, "RAY_AUTH_MODE": "disabled"}, home) is None
    with pytest.raises(SubmitError, match="RAY_AUTH_TOKEN_PATH"):
        resolve_token(None, {"RAY_AUTH_TOKEN_PATH": str(tmp_path / "missing")}, home)


def test_wandb_variables_and_env_items_are_forwarded_secrets_and_nothing_else_are_not():
    env = {"WANDB_API_KEY": "k", "WANDB_MODE": "offline", "HOME": "/root", "RAY_AUTH_TOKEN": "secret"}
    assert forwarded_env(env, ["HF_HOME=/cache", "A=b=c"]) == {
        "WANDB_MODE": "offline", "HF_HOME": "/cache", "A": "b=c"}
    assert submit.withheld_secrets(env) == ["WANDB_API_KEY"]
    with pytest.raises(SubmitError, match="KEY=VALUE"):
        forwarded_env(env, ["NOVALUE"])
    for item in ("HF_TOKEN=hf_Q7v", "AWS_SECRET_ACCESS_KEY=Zq9w", "OPENAI_API_KEY=sk-Q1", "DB_PASSWORD=pw_Q2"):
        with pytest.raises(SubmitError, match="secret") as err:
            forwarded_env(env, [item])
        assert item.split("=", 1)[1] not in str(err.value)
    with pytest.raises(SubmitError, match="runtime env"):
        submit.submit(object(), "launch.train", [], REPO, {"WANDB_API_KEY": "k"})


def test_a_secrets_file_travels_as_a_path_and_is_read_by_the_job(tmp_path, monkeypatch):
    from launch.with_secrets import SecretsFileError, apply_secrets, read_secrets_file

    path = tmp_path / "secrets.env"
    path.write_text("# W&B\nexport WANDB_API_KEY='abc=123'\n\nHF_TOKEN = hf_xyz\n")
    path.chmod(0o600)
    cmd = shlex.split(entrypoint("launch.train", ["recipe=quickstart"], secrets_file=str(path)))
    assert cmd == ["python", "-m", "launch.with_secrets", str(path), "launch.train", "recipe=quickstart",
                   "cluster.address=auto"]
    assert read_secrets_file(path) == {"WANDB_API_KEY": "abc=123", "HF_TOKEN": "hf_xyz"}
    env: dict = {"WANDB_API_KEY": "old"}
    assert apply_secrets(read_secrets_file(path), env) == ["HF_TOKEN", "WANDB_API_KEY"]
    assert env == {"WANDB_API_KEY": "abc=123", "HF_TOKEN": "hf_xyz"}
    path.chmod(0o644)
    with pytest.raises(SecretsFileError, match="chmod 600"):
        read_secrets_file(path)
    path.chmod(0o600)
    path.write_text("WANDB_API_KEY=ok\nnot a pair supersecret\n")
    with pytest.raises(SecretsFileError, match=r"secrets\.env:2") as err:
        read_secrets_file(path)
    assert "supersecret" not in str(err.value)
    with pytest.raises(SecretsFileError, match="does not exist"):
        read_secrets_file(tmp_path / "missing.env")


def test_runtime_env_uploads_the_repo_without_runs_and_the_venv(tmp_path):
    env = runtime_env(REPO, {"WANDB_MODE": "offline"})
    assert env["working_dir"] == str(REPO) and env["env_vars"] == {"WANDB_MODE": "offline"}
    for pattern in ("runs/", ".venv/", ".git/", "wandb/"):
        assert pattern in env["excludes"]
    with pytest.raises(SubmitError, match="not a vrs-rl checkout"):
        runtime_env(tmp_path, {})


def test_entrypoint_joins_the_cluster_and_quotes_items():
    cmd = shlex.split(entrypoint("launch.train", ["recipe=quickstart", "trainer.run_dir=/a b/c"]))
    assert cmd == ["python", "-m", "launch.train", "recipe=quickstart", "trainer.run_dir=/a b/c", "cluster.address=auto"]
    explicit = shlex.split(entrypoint("launch.sweep", ["sweep=x.yaml", "cluster.address=10.0.0.1:6379"]))
    assert explicit[-1] == "cluster.address=10.0.0.1:6379" and "cluster.address=auto" not in explicit
    with pytest.raises(SubmitError, match="--module"):
        entrypoint("os", [])
    with pytest.raises(SubmitError, match="not key=value"):
        entrypoint("launch.train", ["quickstart"])


class _Unauthorized(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server API
        status = 403 if self.headers.get("Authorization") else 401
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b"Unauthorized: Missing authentication token" if status == 401 else b"Forbidden")

    do_POST = do_GET

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture
def auth_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Unauthorized)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_cluster_that_wants_a_token_gives_a_clear_error(auth_server, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    for key in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"):
        monkeypatch.delenv(key, raising=False)
    assert submit.main(["--address", auth_server, "status", "raysubmit_x"]) == 2
    err = capsys.readouterr().err
    assert "requires a token" in err and "RAY_AUTH_TOKEN" in err
    monkeypatch.setenv("RAY_AUTH_TOKEN", "wrong")
    assert submit.main(["--address", auth_server, "status", "raysubmit_x"]) == 2
    err = capsys.readouterr().err
    assert "rejected the token from RAY_AUTH_TOKEN" in err


def test_an_unreachable_dashboard_is_named(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert submit.main(["--address", f"http://127.0.0.1:{port}", "list"]) == 2
    assert f"127.0.0.1:{port}" in capsys.readouterr().err
