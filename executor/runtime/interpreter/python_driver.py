"""Kiln's driver of one Jupyter kernel (ipykernel), inside a session's sandbox.

The executor (executor/src/interpreter/) starts it as a session process and speaks JSON lines:
  stdin:  {"type": "execute", "code": "..."}            one at a time
          {"type": "env", "env": {...}}                   adds to the kernel's environment
  stdout: {"type": "ready", "interruptPid": N}          once the kernel answers
          {"type": "stdout"|"stderr", "text": "..."}
          {"type": "result", "data": {mime: value}, "main": bool}
          {"type": "error", "name": "...", "value": "...", "traceback": "..."}
          {"type": "end", "executionCount": N, "kernelRestarted": false}
A kernel that dies ends the driver (exit status 3); the executor then starts a new one.
The kernel speaks the Jupyter messaging protocol to this driver (jupyter_client). Interrupts
are SIGINT to `interruptPid` (the kernel), sent by the executor from inside the sandbox.
Everything else the kernel or its children write to fd 1 goes to stderr: fd 1 is the channel.
"""

import json
import os
import queue
import re
import sys

# Take fd 1 for the channel before anything can write to it, and point fd 1 at stderr, so the
# kernel (which inherits it) and the programs a cell starts cannot corrupt the channel.
_channel = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
os.dup2(2, 1)
sys.stdout = sys.stderr

from jupyter_client.manager import KernelManager  # noqa: E402  (after the fd swap, on purpose)

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Kiln caps what it forwards anyway; this keeps one giant stream message from becoming one line.
CHUNK = 256 * 1024


def emit(obj):
    _channel.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
    _channel.flush()


# Run once in every new kernel, silently (no output, no execution count): DataFrames also come
# back as structured data (application/json in pandas' "table" orient: schema + rows, the first
# 1000), registered by name so that pandas is not imported until the user imports it.
SETUP = """
def _kiln_setup():
    import json
    def table(df):
        return json.loads(df.head(1000).to_json(orient="table", default_handler=str))
    get_ipython().display_formatter.formatters["application/json"].for_type_by_name("pandas.core.frame", "DataFrame", table)
_kiln_setup()
del _kiln_setup
"""


def start():
    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=os.getcwd(), env=dict(os.environ))
    kc = km.blocking_client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    kc.execute_interactive(SETUP, silent=True, store_history=False, timeout=60, output_hook=lambda _msg: None)
    return km, kc


def kernel_pid(km):
    provisioner = getattr(km, "provisioner", None)
    process = getattr(provisioner, "process", None) or getattr(km, "kernel", None)
    return getattr(process, "pid", 0) or 0


def run(km, kc, code):
    msg_id = kc.execute(code, store_history=True, allow_stdin=False)
    count = 0
    while True:
        try:
            msg = kc.get_iopub_msg(timeout=0.5)
        except queue.Empty:
            if not km.is_alive():
                return count, True
            continue
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            text = content.get("text", "")
            for i in range(0, len(text), CHUNK):
                emit({"type": "stderr" if content.get("name") == "stderr" else "stdout", "text": text[i : i + CHUNK]})
        elif kind in ("display_data", "update_display_data"):
            emit({"type": "result", "data": content.get("data", {}), "main": False})
        elif kind == "execute_result":
            count = content.get("execution_count") or count
            emit({"type": "result", "data": content.get("data", {}), "main": True})
        elif kind == "execute_input":
            count = content.get("execution_count") or count
        elif kind == "error":
            emit({"type": "error", "name": content.get("ename", "Error"), "value": content.get("evalue", ""), "traceback": ANSI.sub("", "\n".join(content.get("traceback", [])))})
        elif kind == "status" and content.get("execution_state") == "idle":
            return count, False


def main():
    km, kc = start()
    emit({"type": "ready", "interruptPid": kernel_pid(km)})
    for line in sys.stdin:
        try:
            req = json.loads(line)
        except ValueError:
            continue
        if req.get("type") == "env" and isinstance(req.get("env"), dict):
            # A context started with the sandbox takes its session's environment before its first cell.
            kc.execute_interactive("import os as _os, json as _json\n_os.environ.update(_json.loads(%r))\ndel _os, _json" % json.dumps({str(k): str(v) for k, v in req["env"].items()}), silent=True, store_history=False, timeout=60, output_hook=lambda _msg: None)
            continue
        if req.get("type") != "execute":
            continue
        count, died = run(km, kc, str(req.get("code", "")))
        if died:
            # The executor starts a new driver (and kernel) when this one exits: one way a
            # context's kernel is ever replaced, and the pid it signals is always the current one.
            sys.stderr.write("kiln: the Python kernel exited during a cell\n")
            os._exit(3)
        emit({"type": "end", "executionCount": count, "kernelRestarted": False})
    kc.stop_channels()
    km.shutdown_kernel(now=True)


if __name__ == "__main__":
    main()
