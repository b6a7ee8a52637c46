"""One ClientApp task, run by the centre's own runtime: the FAB's code runs only if the
centre approved it.

``perseverance-clientapp`` (``client/federation/runtime.py``) starts this module once per task it
acquires from the SuperNode's Runtime API, as Flower's SuperExec starts
``flwr-clientapp``, and the steps are Flower's own (``flwr.supernode.runtime.
run_clientapp``): pull the task's message, context, run and FAB; install the FAB; load
its ClientApp; run it; push the reply and the task's end. One step is added, before
anything of the FAB is unpacked: the SHA-256 of the FAB's bytes must be on the centre's
approved list (``common/app_approval.py``). Otherwise the task ends with an error reply
(code :data:`APP_NOT_APPROVED`, a fixed sentence naming the hash) that goes back to the
ministry, and one log line here; the FAB is never installed, imported or run.

The token comes on standard input (not on the command line, where ``ps`` shows it).
"""

from __future__ import annotations

import argparse
import sys
from logging import ERROR, INFO
from pathlib import Path

from flwr.app import Context, Error, Message
from flwr.clientapp import ClientApp
from flwr.common import EventType, log

from client.flower_compat import (
    ErrorCode,
    Fab,
    FlowerExitCode,
    HeartbeatSender,
    LoadClientAppError,
    RuntimeHttpClient,
    RuntimeTokenHttpInterceptor,
    RuntimeVersionHttpInterceptor,
    SubStatus,
    flwr_exit,
    get_load_client_app_fn,
    install_from_fab,
    make_simple_http_retry_invoker,
    make_task_heartbeat_fn_http,
    pull_task_input,
    push_message,
    push_task_output,
    register_signal_handlers,
    start_parent_process_monitor,
    validate_and_resolve_root_certificates,
)
from common.app_approval import (
    LIST_UNREADABLE,
    NOT_APPROVED,
    NOT_AS_ANNOUNCED,
    ApprovalError,
    app_refusal,
    approved_apps_path,
    fab_hash,
    is_approved,
)
from common.protocol import Reply, refusal_text

#: Error code of the reply to a task whose app the centre did not approve (Flower's own
#: codes are 0-8; 1000 and up are the project's: ``common.protocol.Reply``).
APP_NOT_APPROVED = int(Reply.NOT_APPROVED)
#: The project's packages: a FAB of this project ships its own copies (see _load_app).
OWN_PACKAGES = frozenset({"client", "common", "server", "simulations"})

# What the ministry reads (the error reply's reason: common.app_approval's sentences) and
# the centre's log line.
REFUSED_LOG = ("[perseverance-clientapp] Refused run %s (%s %s): %s Review the app, then "
               "approve it with `perseverance-client app approve` (list: %s).")


def refusal(fab: Fab, state_dir: Path) -> str | None:
    """Why the centre refuses to run ``fab`` (one sentence sent to the ministry), or
    ``None`` if its bytes hash to an app on the centre's approved list.

    Only the bytes are hashed: nothing of the FAB is unpacked, parsed or imported. A
    FAB whose bytes do not match the hash the SuperLink announced is refused too (the
    app would otherwise be installed under one name and loaded under another).
    """
    digest = fab_hash(fab.content)
    if fab.hash_str != digest:
        return app_refusal(NOT_AS_ANNOUNCED, digest=digest, announced=fab.hash_str)
    try:
        approved = is_approved(state_dir, digest)
    except ApprovalError:
        return app_refusal(LIST_UNREADABLE, digest=digest)
    return None if approved else app_refusal(NOT_APPROVED, digest=digest)


def _load_app(fab: Fab, fab_id: str, fab_version: str) -> ClientApp:
    """Install the approved FAB under ``$FLWR_HOME/apps`` and load its ClientApp, with
    Flower's own functions.

    This process imported the centre's installed ``client`` and ``common`` packages (to
    read the approved list); the FAB ships its own, and Python would answer ``import
    client.federation.app`` from the ones already imported. Forgetting them makes the app's imports
    load the approved FAB's files, as in Flower's fresh ``flwr-clientapp`` process.
    """
    install_from_fab(fab.content, skip_prompt=True)
    for name in [n for n in sys.modules if n.partition(".")[0] in OWN_PACKAGES]:
        del sys.modules[name]
    load = get_load_client_app_fn(default_app_ref="", app_path=None, multi_app=True)
    return load(fab_id, fab_version, fab.hash_str)


def run_task(
    runtime_api_address: str,
    token: str,
    state_dir: Path,
    insecure: bool,
    certificates: bytes | None = None,
    parent_pid: int | None = None,
) -> None:
    """Run one task of the SuperNode's Runtime API (refused, or run to its reply);
    exits the process like Flower's ``flwr-clientapp``."""
    if parent_pid is not None:
        start_parent_process_monitor(parent_pid)
    retry_invoker = make_simple_http_retry_invoker()
    client = RuntimeHttpClient.from_server_address(
        server_address=runtime_api_address,
        insecure=insecure,
        root_certificates=certificates,
        interceptors=[
            RuntimeVersionHttpInterceptor(component_name="flwr-clientapp"),
            RuntimeTokenHttpInterceptor(token),
        ],
        retry_invoker=retry_invoker,
    )
    heartbeat: HeartbeatSender | None = None
    message: Message | None = None
    reply: Message | None = None
    context: Context | None = None
    sub_status, details = SubStatus.FAILED, "ClientApp task failed due to unknown reason"
    exit_code = FlowerExitCode.SUCCESS

    def on_exit() -> None:
        retry_invoker.max_tries = 1  # do not block the exit on retries
        push_task_output(client=client, context=context, sub_status=sub_status,
                         details=details)
        if heartbeat is not None and heartbeat.is_running:
            heartbeat.stop()
        client.close()

    register_signal_handlers(event_type=EventType.FLWR_CLIENTAPP_RUN_LEAVE,
                             exit_message="Task stopped.", exit_handlers=[on_exit])
    try:
        heartbeat = HeartbeatSender(make_task_heartbeat_fn_http(client))
        heartbeat.start()
        message, context, run, fab = pull_task_input(client)
        reason = refusal(fab, state_dir)
        if reason is not None:
            log(ERROR, REFUSED_LOG, run.run_id, run.fab_id or "unnamed app",
                run.fab_version, reason, approved_apps_path(state_dir))
            # After the centre's declared name (its data file's), as its other refusals.
            data_path = str(context.node_config.get("data-path", "") or "")
            reply = Message(Error(code=APP_NOT_APPROVED,
                                  reason=refusal_text(Path(data_path).stem, reason)),
                            reply_to=message)
            details = reason
        else:
            log(INFO, "[perseverance-clientapp] Run %s: app %s is approved.", run.run_id,
                fab.hash_str)
            client_app = _load_app(fab, run.fab_id, run.fab_version)
            reply = client_app(message=message, context=context)
            sub_status, details = SubStatus.COMPLETED, ""
    except Exception as ex:  # the reply says what went wrong, as Flower's does
        code, reason = ErrorCode.CLIENT_APP_RAISED_EXCEPTION, f"{type(ex)}:<'{ex}'>"
        if isinstance(ex, LoadClientAppError):
            code = ErrorCode.LOAD_CLIENT_APP_EXCEPTION
            reason = "An exception was raised when attempting to load `ClientApp`"
        log(ERROR, "ClientApp raised an exception", exc_info=ex)
        details = reason
        if message is not None:
            reply = Message(Error(code=code, reason=reason), reply_to=message)
        exit_code = (FlowerExitCode.COMMON_APP_IMPORT_ERROR if isinstance(ex, ImportError)
                     else FlowerExitCode.TASK_PROC_EXCEPTION)
    finally:
        if reply is not None and context is not None:
            try:
                push_message(client, reply, context)
            except Exception as ex:
                log(ERROR, "Failed to push reply message", exc_info=ex)
                exit_code = FlowerExitCode.CLIENTAPP_COMMUNICATION_ERROR
    flwr_exit(code=exit_code, event_type=EventType.FLWR_CLIENTAPP_RUN_LEAVE)


def main(argv: list[str] | None = None) -> None:
    """Entry point: ``python -m client.federation.runtime_task`` (started by the runtime only)."""
    parser = argparse.ArgumentParser(description="Run one ClientApp task (token on stdin).")
    parser.add_argument("--runtime-api-address", required=True)
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--insecure", action="store_true")
    parser.add_argument("--root-certificates", default=None)
    parser.add_argument("--parent-pid", type=int, default=None)
    args = parser.parse_args(argv)
    token = sys.stdin.readline().strip()
    if not token:
        sys.exit("No task token on standard input.")
    run_task(
        runtime_api_address=args.runtime_api_address,
        token=token,
        state_dir=args.state,
        insecure=args.insecure,
        certificates=validate_and_resolve_root_certificates(args.root_certificates,
                                                            args.insecure),
        parent_pid=args.parent_pid,
    )


if __name__ == "__main__":
    main()
