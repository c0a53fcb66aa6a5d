"""The name a process's metrics files carry in the shared directory (chatproject/metrics_setup.py)."""

import os
import socket

from chatproject import metrics_setup


def test_the_name_is_host_and_pid_and_a_forked_child_takes_its_own():
    assert metrics_setup.process_identifier() == f"{socket.gethostname()}-{os.getpid()}"
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child reports the name it sees, and nothing else runs in it
        os.write(write, metrics_setup.process_identifier().encode())
        os._exit(0)
    os.close(write)
    _, status = os.waitpid(child, 0)
    seen = os.read(read, 200).decode()
    os.close(read)
    assert os.waitstatus_to_exitcode(status) == 0
    assert seen == f"{socket.gethostname()}-{child}"
    assert metrics_setup.process_identifier() == f"{socket.gethostname()}-{os.getpid()}"  # the parent's is unchanged
