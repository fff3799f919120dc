#define _GNU_SOURCE
#include "CEngineSupport.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/prctl.h>
#include <sys/syscall.h>
#endif

// Everything below runs in a forked child of a multi-threaded process, so only async-signal-safe
// calls are used (no malloc, no stdio).

static void reset_signals(void) {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    // The runner ignores SIGINT (it polls a flag); ignored dispositions survive exec.
    for (int s = 1; s < NSIG; s++) {
        if (s == SIGKILL || s == SIGSTOP) continue;
        sigaction(s, &dfl, NULL);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

static void close_from(int lowest) {
#if defined(__linux__) && defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    if (close_range((unsigned)lowest, ~0U, 0) == 0) return;
#endif
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 65536) max = 65536;
    for (int fd = lowest; fd < max; fd++) close(fd);
}

// fork() without the pthread_atfork handlers: OpenBLAS registers one that shuts its thread pool
// down before every fork, which leaves an engine computation running on another thread of the
// runner waiting forever for workers that are gone. A raw clone copies the process like fork and
// runs no handlers.
static pid_t fork_without_handlers(void) {
#if defined(__linux__) && defined(SYS_clone)
    return (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
#else
    return fork();
#endif
}

// The group leader's death signal handler: the runner died, take the whole group down with it.
static void runner_died(int sig) {
    (void)sig;
    kill(0, SIGKILL);
    _exit(137);
}

pid_t pd_spawn_group(const char *path, char *const argv[], char *const envp[], const char *cwd, int out_fd) {
    pid_t runner = getpid();
    pid_t leader = fork_without_handlers();
    if (leader != 0) return leader < 0 ? -errno : leader;

    // Group leader: its own process group (a terminal's Ctrl-C and the runner's group kill reach
    // exactly the command's processes), dies with the runner's thread (PR_SET_PDEATHSIG) and then
    // kills the group, because the death signal reaches only the direct child, not the command's own children.
    setpgid(0, 0);
    reset_signals();
    struct sigaction ign, died;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    // The group gets SIGINT/SIGTERM on cancellation: the command handles it; the leader waits for it.
    sigaction(SIGINT, &ign, NULL);
    sigaction(SIGTERM, &ign, NULL);
    memset(&died, 0, sizeof died);
    died.sa_handler = runner_died;
    sigaction(SIGUSR2, &died, NULL);
#if defined(__linux__)
    prctl(PR_SET_PDEATHSIG, SIGUSR2);
#endif
    // The runner may have died before prctl took effect.
    if (getppid() != runner) { kill(0, SIGKILL); _exit(137); }

    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0) _exit(126);
    close_from(3);
    if (cwd && chdir(cwd) != 0) _exit(126);

    pid_t command = fork_without_handlers();
    if (command < 0) _exit(126);
    if (command == 0) {
        reset_signals();
        execve(path, argv, envp);
        _exit(127);
    }
    int status = 0;
    while (waitpid(command, &status, 0) < 0) {
        if (errno != EINTR) _exit(126);
    }
    if (WIFEXITED(status)) _exit(WEXITSTATUS(status));
    // Die of the same signal, so the runner reports it as such.
    int sig = WIFSIGNALED(status) ? WTERMSIG(status) : SIGKILL;
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(sig, &dfl, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    kill(getpid(), sig);
    _exit(128 + sig);
}
