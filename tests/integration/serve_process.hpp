#pragma once

// The real `microcare serve` binary as a child process, for tests of what only a process has:
// a SIGKILL in the middle of work, SIGHUP, SIGTERM.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>

#include "fhir/json.hpp"

namespace microcare::testing {

// A `microcare serve` child process; its port is read from its first log lines.
class ServeProcess {
public:
    explicit ServeProcess(const std::string& config_path) {
        int pipe_fds[2];
        if (pipe(pipe_fds) != 0) throw std::runtime_error("pipe");
        pid_ = fork();
        if (pid_ == 0) {
            dup2(pipe_fds[1], STDERR_FILENO);
            close(pipe_fds[0]);
            close(pipe_fds[1]);
            execl(MICROCARE_BINARY, MICROCARE_BINARY, "serve", "--config", config_path.c_str(),
                  static_cast<char*>(nullptr));
            _exit(127);
        }
        close(pipe_fds[1]);
        log_ = fdopen(pipe_fds[0], "r");
        char line[4096];
        while (fgets(line, sizeof line, log_) != nullptr) {
            std::string text(line);
            if (text.find("MicroCare is listening") == std::string::npos) continue;
            fhir::IssueList issues;
            auto doc = fhir::JsonDocument::Parse(text, issues);
            if (doc)
                port_ = static_cast<unsigned short>(
                    std::stoi(std::string(doc->Root()["port"].String())));
            break;
        }
        // Keep draining the log so that the child never blocks on a full pipe.
        drain_ = std::thread([this] {
            char buffer[4096];
            while (fgets(buffer, sizeof buffer, log_) != nullptr) {
            }
        });
    }
    ~ServeProcess() {
        if (pid_ > 0) Signal(SIGKILL);
        if (drain_.joinable()) drain_.join();
        if (log_ != nullptr) fclose(log_);
    }
    // Sends `signal` and leaves the process running (SIGHUP).
    void Send(int signal) const {
        if (pid_ > 0) kill(pid_, signal);
    }
    // Sends `signal` and waits for the process to end.
    void Signal(int signal) {
        if (pid_ <= 0) return;
        kill(pid_, signal);
        int status = 0;
        waitpid(pid_, &status, 0);
        pid_ = -1;
    }
    unsigned short port() const { return port_; }

private:
    pid_t pid_ = -1;
    FILE* log_ = nullptr;
    std::thread drain_;
    unsigned short port_ = 0;
};

}  // namespace microcare::testing
