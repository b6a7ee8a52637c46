"""``perseverance-clientapp``: the centre's own ClientApp runtime, in front of its SuperNode.

Flower 1.42 lets whoever reaches the SuperLink's Control API ship a FAB (the app's
code) to every centre; a SuperNode with ``--trusted-entities`` accepts only FABs signed
through Flower Hub, which a self-hosted federation does not have. So the SuperNode runs
with ``--isolation process`` and this long-lived process takes its place beside it: it
asks the SuperNode's Runtime API for ClientApp tasks (``AcquireTask``, as Flower's
``flower-superexec`` does) and starts one fresh process per task
(``client/federation/runtime_task.py``, where Flower's ``flwr-clientapp`` would run), which checks
the FAB's SHA-256 against ``<state>/approved-apps.json`` before anything of the FAB is
unpacked. Approve, list and revoke with ``perseverance-client app``. With
``--superexec-auth-secret-file`` (the same file as the SuperNode's flag of that name:
Flower's SuperExec authentication, HMAC over each ``AcquireTask``), the SuperNode gives
tasks only to this runtime, not to whoever else reaches its Runtime API. At most
``--max-tasks`` task processes run at once (default: the site policy's
``limits.tasks_at_once``, 2); the SuperNode keeps the others until one ends.

Exit codes: 0 stopped; 2 unusable command line (no state folder).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from logging import INFO, WARN
from pathlib import Path

from flwr.common import EventType, log

from client.flower_compat import (
    AcquireTaskRequest,
    ProtobufClientInterceptor,
    RuntimeHttpClient,
    RuntimeVersionHttpInterceptor,
    SuperExecAuthHttpInterceptor,
    TaskType,
    load_superexec_auth_secret,
    make_simple_http_retry_invoker,
    register_signal_handlers,
    validate_and_resolve_root_certificates,
)
from client.site_policy import WorkLimits
from common.app_approval import ApprovalError, approved_apps_path, read_approved
from common.errors import ExitCode
from common.i18n.catalogue import N_
from common.i18n.parser import LocalisedParser

HELP = ("Run the ClientApps of the centre's SuperNode, only those the centre approved "
        "(perseverance-client app approve). Exit codes: 0 stopped; 2 unusable command line.")
POLL_SECONDS = 0.2
#: The Runtime API calls Flower's SuperExec authentication covers (as ``flower-superexec``):
#: a task's other calls carry the token its ``AcquireTask`` answer gave.
AUTHENTICATED_METHODS = frozenset({"/flwr.proto.Runtime/AcquireTask"})
#: ``-P``: the task process's working folder (the centre's state) is not on its path.
TASK_COMMAND = (sys.executable, "-P", "-m", "client.federation.runtime_task")


def task_argv(runtime_api_address: str, state_dir: Path, insecure: bool,
              root_certificates: str | None) -> list[str]:
    """The command line of one task process (its token goes to its standard input)."""
    argv = [*TASK_COMMAND, "--runtime-api-address", runtime_api_address,
            "--state", str(state_dir), "--parent-pid", str(os.getpid())]
    if insecure:
        argv.append("--insecure")
    elif root_certificates is not None:
        argv += ["--root-certificates", root_certificates]
    return argv


def announce_approved(state_dir: Path) -> None:
    """Say at start what this centre will run (a missing list means: nothing yet)."""
    path = approved_apps_path(state_dir)
    try:
        apps = read_approved(state_dir)
    except ApprovalError as err:
        log(WARN, "[perseverance-clientapp] %s Every task will be refused until it is "
            "fixed.", err)
        return
    if not apps:
        log(WARN, "[perseverance-clientapp] No app is approved in %s: every task will be "
            "refused until `perseverance-client app approve` adds one.", path)
        return
    log(INFO, "[perseverance-clientapp] %d approved app(s) in %s: %s", len(apps), path,
        ", ".join(app.fab_hash[:12] for app in apps))


def serve(runtime_api_address: str, state_dir: Path, insecure: bool,
          root_certificates: str | None, poll_seconds: float = POLL_SECONDS,
          max_tasks: int = WorkLimits().tasks_at_once,
          auth_secret: bytes | None = None) -> None:
    """Acquire the SuperNode's ClientApp tasks one by one and start a task process for
    each, never more than ``max_tasks`` at once, until stopped (SIGTERM or SIGINT).
    ``auth_secret`` signs each ``AcquireTask`` (Flower's SuperExec authentication)."""
    interceptors: list[ProtobufClientInterceptor] = [
        RuntimeVersionHttpInterceptor(component_name="SuperExec")]
    if auth_secret is not None:
        interceptors.append(SuperExecAuthHttpInterceptor(
            master_secret=auth_secret, protected_methods=AUTHENTICATED_METHODS))
    client = RuntimeHttpClient.from_server_address(
        server_address=runtime_api_address,
        insecure=insecure,
        root_certificates=validate_and_resolve_root_certificates(root_certificates, insecure),
        interceptors=interceptors,
        retry_invoker=make_simple_http_retry_invoker(),
    )
    register_signal_handlers(event_type=EventType.RUN_SUPEREXEC_LEAVE,
                             exit_message="perseverance-clientapp stopped.",
                             exit_handlers=[client.close])
    announce_approved(state_dir)
    argv = task_argv(runtime_api_address, state_dir, insecure, root_certificates)
    running: list[subprocess.Popen[bytes]] = []
    while True:
        running = [task for task in running if task.poll() is None]  # reaps the ended
        if len(running) >= max_tasks:  # the task stays with the SuperNode until one ends
            time.sleep(poll_seconds)
            continue
        answer = client.AcquireTask(
            AcquireTaskRequest(supported_task_types=[TaskType.CLIENT_APP]))
        if answer.HasField("task") and answer.token:
            log(INFO, "[perseverance-clientapp] Task %d of run %d acquired.",
                answer.task.task_id, answer.task.run_id)
            task = subprocess.Popen(argv, stdin=subprocess.PIPE)
            assert task.stdin is not None
            task.stdin.write(f"{answer.token}\n".encode())
            task.stdin.close()
            running.append(task)
        time.sleep(poll_seconds)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``perseverance-clientapp`` console script."""
    # The help and the errors in French unless --lang en or the locale (issue 28).
    parser = LocalisedParser(prog="perseverance-clientapp", description=HELP, argv=argv)
    parser.add_argument("--runtime-api-address", required=True,
                        help="The SuperNode's Runtime API (HOST:PORT).")
    parser.add_argument("--state", type=Path, required=True,
                        help="The centre's state folder (the SuperNode's state-dir); its "
                        "approved-apps.json lists the apps that may run.")
    parser.add_argument("--insecure", action="store_true",
                        help="Plain HTTP to the Runtime API (it never leaves the centre).")
    parser.add_argument("--root-certificates", default=None,
                        help="CA certificate of the Runtime API's TLS certificate.")
    parser.add_argument("--max-tasks", type=int, default=WorkLimits().tasks_at_once,
                        help="Task processes run at once, at least 1 (default: "
                        "%(default)s, the site policy's limits.tasks_at_once); the others "
                        "wait with the SuperNode.")
    parser.add_argument("--superexec-auth-secret-file", type=Path, default=None,
                        help="The SuperNode's SuperExec secret (the file given to its flag "
                        "of the same name): signs each task request, so that the SuperNode "
                        "gives its tasks to this runtime only.")
    args = parser.parse_args(argv)
    if not args.state.is_dir():
        parser.fail(N_("the state folder %(path)s does not exist; give the centre's "
                       "state-dir.", path=str(args.state)), ExitCode.UNUSABLE)
    if args.max_tasks < 1:
        parser.fail(N_("--max-tasks must be at least 1."), ExitCode.UNUSABLE)
    secret = None
    if args.superexec_auth_secret_file is not None:
        try:
            secret = load_superexec_auth_secret(str(args.superexec_auth_secret_file))
        except ValueError as err:
            parser.fail(N_("the SuperExec secret file %(path)s cannot be used: %(reason)s",
                           path=str(args.superexec_auth_secret_file), reason=str(err)),
                        ExitCode.UNUSABLE)
    serve(args.runtime_api_address, args.state.resolve(), args.insecure,
          args.root_certificates, max_tasks=args.max_tasks, auth_secret=secret)


if __name__ == "__main__":
    main()
