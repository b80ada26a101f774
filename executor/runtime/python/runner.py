"""Kiln runner for Python 3.11 functions (AWS python3.11 semantics).

Run inside a sandbox as ``/usr/bin/python3 -I /opt/kiln/runtime/python/runner.py``.
Talks to the executor over fd 3 with newline-delimited JSON (see ../README.md).

Boot is kept light on purpose: until the ``load`` message arrives only ``sys``/``os``
(already loaded by the interpreter) are used, so an idle pre-booted runner costs
little memory. ``json`` is imported on the first message, ``logging`` by ``load``,
``traceback`` on the first error.
"""

import os
import sys

_CHANNEL_FD = 3
_RUNNER_FILE = os.path.abspath(__file__)
_RUNNER_DIR = os.path.dirname(_RUNNER_FILE)

# Don't let user code `import runner` (script dir is sys.path[0] without -I).
if sys.path and sys.path[0] and os.path.abspath(sys.path[0]) == _RUNNER_DIR:
    del sys.path[0]

import _thread  # noqa: E402  (builtin, no import cost)

_dumps = None  # set by _init_json(): JSON without importing json/re (see there)
_loads = None
_chan_lock = _thread.RLock()
_out_lock = _thread.RLock()

_REQUEST_ID = None  # AWS keeps the last request id for log lines between invocations
_current_id = None  # id of the invocation in progress (None between invocations)
_state = "idle"  # idle -> loading -> loaded | failed
_handler = None
_load_error = None
_invoked_function_arn = None
_shutting_down = False


# --------------------------------------------------------------------------
# Channel


def _write_all(data):
    with _chan_lock:
        view = memoryview(data)
        while view:
            try:
                n = os.write(_CHANNEL_FD, view)
            except InterruptedError:
                continue
            except OSError:
                # The executor is gone: nothing left to report to.
                os._exit(1)
            view = view[n:]


def _init_json():
    """JSON via the _json C accelerator directly: `import json` pulls in re/enum,
    which costs more than everything else `load` does for a small handler."""
    global _dumps, _loads
    try:
        import _json as c

        class _ScanContext:
            strict = True
            object_hook = None
            object_pairs_hook = None
            parse_float = float
            parse_int = int
            parse_constant = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}.__getitem__

        scanner = c.make_scanner(_ScanContext())
        encode_str = c.encode_basestring_ascii
        ws = " \t\n\r"

        def _no_default(o):
            raise TypeError("Object of type %s is not JSON serializable" % o.__class__.__name__)

        def loads(s):
            if isinstance(s, (bytes, bytearray)):
                s = s.decode("utf-8")
            idx = len(s) - len(s.lstrip(ws))
            try:
                obj, end = scanner(s, idx)
            except StopIteration as e:
                raise ValueError("Expecting value: char %d" % e.value) from None
            if s[end:].strip(ws):
                raise ValueError("Extra data: char %d" % end)
            return obj

        def dumps(obj, default=None, allow_nan=True):
            enc = c.make_encoder({}, default or _no_default, encode_str, None, ":", ",", False, False, allow_nan)
            return "".join(enc(obj, 0))

    except (ImportError, AttributeError, TypeError):  # not CPython's accelerator: plain json
        import json

        def loads(s):
            return json.loads(s)

        def dumps(obj, default=None, allow_nan=True):
            return json.dumps(obj, default=default, allow_nan=allow_nan, separators=(",", ":"))

    _dumps, _loads = dumps, loads


def _send(obj):
    _write_all((_dumps(obj) + "\n").encode("utf-8"))


def _send_line(line):
    _write_all((line + "\n").encode("utf-8"))


def _messages():
    buf = bytearray()
    while True:
        try:
            chunk = os.read(_CHANNEL_FD, 1 << 20)
        except InterruptedError:
            continue
        except OSError:
            return
        if not chunk:
            return
        scan = len(buf)
        buf += chunk
        while True:
            i = buf.find(b"\n", scan)
            if i < 0:
                break
            line = bytes(buf[:i])
            del buf[: i + 1]
            scan = 0
            if line.strip():
                yield line


# --------------------------------------------------------------------------
# Output capture: print()/sys.stdout/sys.stderr and logging become `log` messages.


class _Output:
    """Line-buffers stdout/stderr text so that print()'s separate writes of the
    text and the newline become one log message. Partial lines are flushed before
    anything else is sent (other stream, logging records, results)."""

    def __init__(self):
        self.pending = {"stdout": [], "stderr": []}
        self.pending_len = {"stdout": 0, "stderr": 0}

    def _emit(self, stream, data):
        _send({"type": "log", "id": _current_id, "stream": stream, "data": data})

    def flush(self, stream):
        with _out_lock:
            parts = self.pending[stream]
            if parts:
                self.pending[stream] = []
                self.pending_len[stream] = 0
                self._emit(stream, "".join(parts))

    def flush_all(self):
        with _out_lock:
            self.flush("stdout")
            self.flush("stderr")

    def write(self, stream, s):
        with _out_lock:
            other = "stderr" if stream == "stdout" else "stdout"
            if self.pending[other]:
                self.flush(other)
            nl = s.rfind("\n")
            if nl < 0:
                self.pending[stream].append(s)
                self.pending_len[stream] += len(s)
                if self.pending_len[stream] > 65536:
                    self.flush(stream)
                return
            parts = self.pending[stream]
            if parts:
                parts.append(s[: nl + 1])
                head = "".join(parts)
            else:
                head = s if nl == len(s) - 1 else s[: nl + 1]
            rest = s[nl + 1 :]
            self.pending[stream] = [rest] if rest else []
            self.pending_len[stream] = len(rest)
            self._emit(stream, head)

    def whole(self, stream, data):
        """Sends `data` as one log message, after any partial lines."""
        with _out_lock:
            self.flush_all()
            self._emit(stream, data)


_out = _Output()


import io  # noqa: E402  (already imported by the interpreter at startup)


class _BinaryProxy:
    def __init__(self, text_stream):
        self._text = text_stream

    def write(self, b):
        self._text.write(bytes(b).decode("utf-8", "replace"))
        return len(b)

    def flush(self):
        self._text.flush()


class _LogStream(io.TextIOBase):
    def __init__(self, name, fd):
        super().__init__()
        self._name = name
        self._fd = fd
        self.buffer = _BinaryProxy(self)

    encoding = "utf-8"
    errors = "strict"
    newlines = None
    line_buffering = True

    @property
    def name(self):
        return "<%s>" % self._name

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError("write() argument must be str, not %s" % type(s).__name__)
        if s:
            _out.write(self._name, s)
        return len(s)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        _out.flush(self._name)

    def fileno(self):
        return self._fd

    def isatty(self):
        return False

    def writable(self):
        return True

    def readable(self):
        return False

    def seekable(self):
        return False

    def close(self):
        # Never really close: the runner owns these.
        self.flush()


def _install_logging_hook():
    """AWS configures the root logger before user code runs. Importing logging
    costs a lot (re, enum, traceback...), so instead the handler is installed the
    moment user code (or a library) imports logging, before that import returns."""
    if "logging" in sys.modules:
        _setup_logging(sys.modules["logging"])
        return
    path_finder = sys.modules["_frozen_importlib_external"].PathFinder

    class _LoggingHook:
        @staticmethod
        def find_spec(fullname, path=None, target=None):
            if fullname != "logging":
                return None
            try:
                sys.meta_path.remove(_LoggingHook)
            except ValueError:
                pass
            spec = path_finder.find_spec(fullname, path)
            if spec is None or spec.loader is None:
                return spec
            loader_exec = spec.loader.exec_module

            def exec_module(module):
                loader_exec(module)
                _setup_logging(module)

            spec.loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, _LoggingHook)


def _setup_logging(logging):
    import time

    class LambdaLoggerHandler(logging.Handler):
        def emit(self, record):
            try:
                _out.whole("stdout", self.format(record))
            except Exception:
                self.handleError(record)

    class LambdaLoggerFilter(logging.Filter):
        def filter(self, record):
            record.aws_request_id = _REQUEST_ID or ""
            return True

    logging.Formatter.converter = time.gmtime
    handler = LambdaLoggerHandler()
    handler.setFormatter(
        logging.Formatter(
            "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n",
            "%Y-%m-%dT%H:%M:%S",
        )
    )
    handler.addFilter(LambdaLoggerFilter())
    root = logging.getLogger()
    level = os.environ.get("AWS_LAMBDA_LOG_LEVEL", "").upper()
    if level in logging._nameToLevel:
        root.setLevel(level)
    root.addHandler(handler)


# --------------------------------------------------------------------------
# Errors (shapes follow awslambdaric's bootstrap.py)


class FaultException(Exception):
    MARSHAL_ERROR = "Runtime.MarshalError"
    USER_CODE_SYNTAX_ERROR = "Runtime.UserCodeSyntaxError"
    HANDLER_NOT_FOUND = "Runtime.HandlerNotFound"
    IMPORT_MODULE_ERROR = "Runtime.ImportModuleError"
    BUILT_IN_MODULE_CONFLICT = "Runtime.BuiltInModuleConflict"
    MALFORMED_HANDLER_NAME = "Runtime.MalformedHandlerName"
    LAMBDA_CONTEXT_UNMARSHAL_ERROR = "Runtime.LambdaContextUnmarshalError"

    def __init__(self, exception_type, msg, trace=None):
        super().__init__(msg)
        self.msg = msg
        self.exception_type = exception_type
        self.trace = trace


def _make_error(error_message, error_type, stack_trace, invoke_id=None):
    return {
        "errorMessage": error_message if error_message else "",
        "errorType": error_type if error_type else "",
        "requestId": invoke_id if invoke_id is not None else "",
        "stackTrace": stack_trace if stack_trace else [],
    }


def _fault_result(exc_info, invoke_id=None):
    import traceback

    etype, value, tb = exc_info
    frames = [(f.filename, f.lineno, f.name, f.line) for f in traceback.extract_tb(tb)]
    # Drop the runner's own frames at the top of the traceback.
    for i in range(len(frames)):
        if frames[i][0] != _RUNNER_FILE:
            frames = frames[i:]
            break
    else:
        frames = []
    return _make_error(str(value), etype.__name__, traceback.format_list(frames), invoke_id)


def _log_error(error_result):
    desc = "[ERROR]"
    etype = error_result.get("errorType")
    if etype:
        desc += " " + etype
    emsg = error_result.get("errorMessage")
    if emsg:
        if etype:
            desc += ":"
        desc += " " + emsg
    lines = [desc]
    trace = error_result.get("stackTrace")
    if trace is not None:
        lines.append("Traceback (most recent call last):")
        for element in trace:
            if element == "":
                lines.append("")
                continue
            for line in element.splitlines():
                stripped = line.lstrip(" ")
                lines.append("\u00a0" * (len(line) - len(stripped)) + stripped)
    _out.whole("stdout", "\n".join(lines) + "\n")


def _exit_error(request_id, code):
    prefix = "RequestId: %s " % request_id if request_id else ""
    if code == 0:
        reason = "Runtime exited without providing a reason"
    else:
        reason = "Runtime exited with error: exit status %s" % code
    return {"errorType": "Runtime.ExitError", "errorMessage": prefix + "Error: " + reason, "stackTrace": []}


# --------------------------------------------------------------------------
# Loading


def _lambda_env(msg):
    fn = msg.get("function") or {}
    user_env = msg.get("env") or {}
    task_root = msg.get("taskRoot") or "/var/task"

    def pick(value, key, default):
        if value is not None:
            return str(value)
        return user_env.get(key, default)

    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin:/opt/bin",
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "LD_LIBRARY_PATH": "/lib64:/usr/lib64:%s:%s/lib:/opt/lib" % (task_root, task_root),
        "AWS_REGION": str(fn.get("region") or "us-east-1"),
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "PYTHONPATH": "",
    }
    env.update(user_env)
    env.setdefault("AWS_DEFAULT_REGION", env["AWS_REGION"])
    env.update(
        {
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
            "AWS_LAMBDA_FUNCTION_NAME": pick(fn.get("functionName"), "AWS_LAMBDA_FUNCTION_NAME", ""),
            "AWS_LAMBDA_FUNCTION_VERSION": pick(fn.get("functionVersion"), "AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": pick(fn.get("memoryLimitInMB"), "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
            "AWS_LAMBDA_LOG_GROUP_NAME": pick(fn.get("logGroupName"), "AWS_LAMBDA_LOG_GROUP_NAME", ""),
            "AWS_LAMBDA_LOG_STREAM_NAME": pick(fn.get("logStreamName"), "AWS_LAMBDA_LOG_STREAM_NAME", ""),
            "LAMBDA_TASK_ROOT": task_root,
            "LAMBDA_RUNTIME_DIR": _RUNNER_DIR,
            "_HANDLER": "" if msg.get("handler") is None else str(msg.get("handler")),
        }
    )
    return env


def _get_handler(handler):
    import importlib

    try:
        modname, fname = handler.rsplit(".", 1)
    except ValueError as e:
        raise FaultException(FaultException.MALFORMED_HANDLER_NAME, "Bad handler '{}': {}".format(handler, str(e)))
    try:
        if modname.split(".")[0] in sys.builtin_module_names:
            raise FaultException(
                FaultException.BUILT_IN_MODULE_CONFLICT,
                "Cannot use built-in module {} as a handler module".format(modname),
            )
        m = importlib.import_module(modname.replace("/", "."))
    except ImportError as e:
        raise FaultException(
            FaultException.IMPORT_MODULE_ERROR, "Unable to import module '{}': {}".format(modname, str(e))
        )
    except SyntaxError as e:
        trace = ['  File "%s" Line %s\n    %s' % (e.filename, e.lineno, e.text)]
        raise FaultException(
            FaultException.USER_CODE_SYNTAX_ERROR, "Syntax error in module '{}': {}".format(modname, str(e)), trace
        )
    try:
        return getattr(m, fname)
    except AttributeError:
        raise FaultException(
            FaultException.HANDLER_NOT_FOUND, "Handler '{}' missing on module '{}'".format(fname, modname)
        )


def _on_load(msg):
    global _state, _handler, _load_error, _invoked_function_arn
    import time

    t0 = time.perf_counter()
    if _state != "idle":
        _send({"type": "loadError", "error": _make_error("load received in state " + _state, "Runtime.InvalidState", [])})
        return
    _state = "loading"
    fn = msg.get("function") or {}
    _invoked_function_arn = fn.get("invokedFunctionArn")
    try:
        env = _lambda_env(msg)
        for k in [k for k in os.environ if k.startswith("KILN_")]:  # runner settings
            del os.environ[k]
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = str(v)
        if hasattr(time, "tzset"):
            time.tzset()
        task_root = env["LAMBDA_TASK_ROOT"]
        os.chdir(task_root)
        # Like AWS: task root first, then layers; PYTHONPATH from the function env too
        # (the interpreter was started before that env existed).
        extra = [p for p in env.get("PYTHONPATH", "").split(":") if p]
        for p in reversed([task_root] + extra + ["/opt/python/lib/python3.11/site-packages", "/opt/python"]):
            if p not in sys.path:
                sys.path.insert(0, p)
        sys.stdout = _LogStream("stdout", 1)
        sys.stderr = _LogStream("stderr", 2)
        _install_logging_hook()
        _handler = _get_handler(env["_HANDLER"])
        _state = "loaded"
        _out.flush_all()
        _send({"type": "loaded", "initDurationMs": round((time.perf_counter() - t0) * 1000, 3)})
    except FaultException as e:
        _fail_load(_make_error(e.msg, e.exception_type, e.trace))
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        _fail_load(_exit_error(None, code))
        _out.flush_all()
        os._exit(code)
    except BaseException:
        _fail_load(_fault_result(sys.exc_info()))


def _fail_load(error):
    global _state, _load_error
    _state = "failed"
    _load_error = error
    _log_error(error)
    _send({"type": "loadError", "error": error})


# --------------------------------------------------------------------------
# Invocations


class CognitoIdentity(object):
    __slots__ = ["cognito_identity_id", "cognito_identity_pool_id"]

    def __repr__(self):
        return "CognitoIdentity([cognito_identity_id=%s,cognito_identity_pool_id=%s])" % (
            self.cognito_identity_id,
            self.cognito_identity_pool_id,
        )


class Client(object):
    __slots__ = ["installation_id", "app_title", "app_version_name", "app_version_code", "app_package_name"]

    def __repr__(self):
        return "Client([%s])" % ",".join("%s=%s" % (k, getattr(self, k)) for k in self.__slots__)


class ClientContext(object):
    __slots__ = ["custom", "env", "client"]

    def __repr__(self):
        return "ClientContext([custom=%s,env=%s,client=%s])" % (self.custom, self.env, self.client)


def _obj_from_dict(cls, d):
    if d is None:
        return None
    obj = cls()
    for field in cls.__slots__:
        setattr(obj, field, d.get(field, None))
    return obj


class LambdaContext(object):
    def __init__(self, invoke_id, client_context, cognito_identity, epoch_deadline_time_in_ms, invoked_function_arn=None):
        self.aws_request_id = invoke_id
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.invoked_function_arn = invoked_function_arn
        self.client_context = _obj_from_dict(ClientContext, client_context)
        if self.client_context is not None:
            self.client_context.client = _obj_from_dict(Client, self.client_context.client)
        self.identity = _obj_from_dict(CognitoIdentity, {})
        if cognito_identity is not None:
            self.identity.cognito_identity_id = cognito_identity.get("cognitoIdentityId")
            self.identity.cognito_identity_pool_id = cognito_identity.get("cognitoIdentityPoolId")
        self._epoch_deadline_time_in_ms = epoch_deadline_time_in_ms

    def get_remaining_time_in_millis(self):
        import time

        delta_ms = self._epoch_deadline_time_in_ms - int(time.time() * 1000)
        return delta_ms if delta_ms > 0 else 0

    def log(self, msg):
        _out.whole("stdout", str(msg))

    def __repr__(self):
        return (
            "LambdaContext([aws_request_id=%s,log_group_name=%s,log_stream_name=%s,function_name=%s,"
            "memory_limit_in_mb=%s,function_version=%s,invoked_function_arn=%s,client_context=%s,identity=%s])"
            % (
                self.aws_request_id,
                self.log_group_name,
                self.log_stream_name,
                self.function_name,
                self.memory_limit_in_mb,
                self.function_version,
                self.invoked_function_arn,
                self.client_context,
                self.identity,
            )
        )


def _decimal_default(o):
    import decimal

    if isinstance(o, decimal.Decimal):
        if o.is_nan():
            return float("nan")
        return int(o) if o == o.to_integral_value() else float(o)
    raise TypeError("Object of type %s is not JSON serializable" % o.__class__.__name__)


def _raw_or_json(body_bytes):
    """Body bytes -> fragment for the result message: parsed JSON if valid, else raw."""
    try:
        text = body_bytes.decode("utf-8")
        _loads(text)
        # Valid JSON: raw newlines can only be insignificant whitespace there.
        return '"result":' + (text.replace("\r", " ").replace("\n", " ") if text.strip() else "null")
    except ValueError:
        import base64

        return '"raw":' + _dumps(base64.b64encode(bytes(body_bytes)).decode("ascii"))


def _marshal(response):
    """Returns the `"result":...` / `"raw":...` fragment, or raises FaultException."""
    if isinstance(response, bytes):
        return _raw_or_json(response)
    try:
        return '"result":' + _dumps(response, default=_decimal_default, allow_nan=False)
    except ValueError as e:
        if "Out of range float values" in str(e):
            # AWS emits NaN/Infinity verbatim: not JSON, so pass those bytes as raw.
            import base64

            body = _dumps(response, default=_decimal_default).encode("utf-8")
            return '"raw":' + _dumps(base64.b64encode(body).decode("ascii"))
        raise FaultException(FaultException.MARSHAL_ERROR, "Unable to marshal response: {}".format(str(e)), None)
    except Exception as e:
        raise FaultException(FaultException.MARSHAL_ERROR, "Unable to marshal response: {}".format(str(e)), None)


_getrusage = None


def _max_rss_kb():
    """Peak resident memory of this process in kB (VmHWM), for the executor's REPORT line.

    Reported with each result so the executor need not read /proc after every invocation.
    ``resource`` is imported on the first invocation, not at boot (idle runners stay small).
    """
    global _getrusage
    if _getrusage is None:
        import resource

        _getrusage = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # noqa: E731
    return _getrusage()


def _on_invoke(msg):
    global _REQUEST_ID, _current_id
    invoke_id = str(msg.get("id"))
    if _state != "loaded":
        error = _load_error or _make_error("invoke received in state " + _state, "Runtime.NotLoaded", [], invoke_id)
        _send({"type": "result", "id": invoke_id, "ok": False, "error": error})
        return
    _REQUEST_ID = invoke_id
    _current_id = invoke_id
    trace_id = msg.get("traceId")
    if trace_id:
        os.environ["_X_AMZN_TRACE_ID"] = str(trace_id)
    else:
        os.environ.pop("_X_AMZN_TRACE_ID", None)
    fragment = None
    error_result = None
    try:
        try:
            ctx = LambdaContext(
                invoke_id,
                msg.get("clientContext"),
                msg.get("identity"),
                int(msg.get("deadlineMs") or 0),
                msg.get("invokedFunctionArn") or _invoked_function_arn,
            )
            response = _handler(msg.get("event"), ctx)
            fragment = _marshal(response)
        except FaultException as e:
            error_result = _make_error(e.msg, e.exception_type, e.trace, invoke_id)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            _finish_exit(invoke_id, code)
        except KeyboardInterrupt:
            _finish_exit(invoke_id, 130)
        except Exception:
            error_result = _fault_result(sys.exc_info(), invoke_id)
        _out.flush_all()
        if error_result is not None:
            _log_error(error_result)
            _send({"type": "result", "id": invoke_id, "ok": False, "maxRssKB": _max_rss_kb(), "error": error_result})
        else:
            _send_line('{"type":"result","id":%s,"ok":true,"maxRssKB":%d,%s}' % (_dumps(invoke_id), _max_rss_kb(), fragment))
    finally:
        _current_id = None


def _finish_exit(invoke_id, code):
    """sys.exit() in a handler: AWS reports the runtime exit; so do we, then exit."""
    global _shutting_down
    _out.flush_all()
    _send({"type": "result", "id": invoke_id, "ok": False, "error": _exit_error(invoke_id, code), "exiting": True})
    _shutting_down = True
    os._exit(code)


def _on_message(line):
    global _shutting_down
    if _loads is None:
        _init_json()
    try:
        msg = _loads(line.decode("utf-8"))
    except ValueError:
        _send({"type": "log", "id": None, "stream": "stderr", "data": "[kiln-runner] bad message: %r\n" % line[:200]})
        return
    kind = msg.get("type") if isinstance(msg, dict) else None
    if kind == "invoke":
        _on_invoke(msg)
    elif kind == "load":
        _on_load(msg)
    elif kind == "shutdown":
        _shutting_down = True
        _out.flush_all()
        os._exit(0)
    else:
        _send({"type": "log", "id": None, "stream": "stderr", "data": "[kiln-runner] unknown message type %r\n" % (kind,)})


def main():
    try:
        os.fstat(_CHANNEL_FD)
    except OSError:
        sys.__stderr__.write("kiln python runner: fd 3 (executor channel) is not open\n")
        os._exit(2)
    os.set_blocking(_CHANNEL_FD, True)
    os.set_inheritable(_CHANNEL_FD, False)  # not for the function's child processes
    if os.environ.get("KILN_PRELOAD"):
        # Trade idle memory for load latency: import what `load` would import.
        _init_json()
        import importlib  # noqa: F401
        import logging  # noqa: F401
        import traceback  # noqa: F401
    _write_all(b'{"type":"ready","runtime":"python","pid":%d}\n' % os.getpid())
    for line in _messages():
        _on_message(line)
    os._exit(0)


if __name__ == "__main__":
    main()
