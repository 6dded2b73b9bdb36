"""Hold an imgadm-style import lock, as the stock imgadm (node-qlocker) takes it.

    lock_holder.py LOCK_FILE SECONDS READY_FILE

Opens LOCK_FILE (0644), takes fcntl.lockf(LOCK_EX) on it, creates READY_FILE,
sleeps SECONDS, then releases by closing the descriptor.
"""
import fcntl
import os
import sys
import time


def main():
    path, seconds, ready = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.lockf(fd, fcntl.LOCK_EX)
    with open(ready, 'w') as f:
        f.write('%d\n' % os.getpid())
    time.sleep(seconds)
    os.close(fd)
    os.unlink(ready)


if __name__ == '__main__':
    main()
