"""Runs a command on a real pseudo-terminal and plays a script of keystrokes and window sizes at it,
as a person at a terminal would: `python3 pty-drive.py STEPS_JSON -- command args...`.

Steps (a JSON list), in order:
  {"size": [rows, cols]}     set the terminal's size and send the command SIGWINCH
  {"send": "text"}           type these bytes ("\\r" is Enter, "\\u0003" Ctrl-C, "\\u0004" Ctrl-D)
  {"expect": "text", "s": N} wait until the output (since the last expect) contains text, at most N s
  {"sleep": N}               wait N seconds
Prints one JSON object: {"ok": bool, "failed": step or null, "output": everything read, "code": the
command's exit code (or 128 + the signal that killed it)}.
"""
import fcntl
import json
import os
import pty
import select
import signal
import struct
import sys
import termios
import time

steps = json.loads(sys.argv[1])
argv = sys.argv[sys.argv.index("--") + 1:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)

out = b""
mark = 0


def read_for(seconds):
    global out
    end = time.time() + seconds
    while True:
        left = end - time.time()
        if left <= 0:
            return True
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            return True
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            return False  # the command ended: the pty's other side is closed
        if not chunk:
            return False
        out += chunk


failed = None
for step in steps:
    if "size" in step:
        rows, cols = step["size"]
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        os.kill(pid, signal.SIGWINCH)
    elif "send" in step:
        os.write(fd, step["send"].encode())
    elif "sleep" in step:
        read_for(step["sleep"])
    elif "expect" in step:
        want = step["expect"].encode()
        end = time.time() + step.get("s", 60)
        while want not in out[mark:] and time.time() < end:
            if not read_for(0.1):
                break
        if want not in out[mark:]:
            failed = step
            break
        mark = out.index(want, mark) + len(want)

# Whatever is left, until the command ends (bounded), then its exit status.
end = time.time() + (5 if failed else 60)
alive = True
while alive and time.time() < end:
    alive = read_for(0.2)
if alive:
    os.kill(pid, signal.SIGKILL)  # it did not end: its code says so (137)
_, status = os.waitpid(pid, 0)
code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
print(json.dumps({"ok": failed is None, "failed": failed, "output": out.decode("utf-8", "replace"), "code": code}))
