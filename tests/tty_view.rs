//! The tty progress and the `seal bench` table as a person sees them (issue 20): each runs in
//! a real terminal (a tmux pane of 80 columns); the pane is captured while the build runs
//! and at the end, with wrapped lines joined (`capture-pane -J`), so a line too wide for the
//! terminal shows as one line over 80 columns.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Ctx, Seal};

const WIDTH: usize = 80;

/// A tmux server of its own (socket in a temp dir), killed on drop.
struct Tmux {
    _dir: tempfile::TempDir,
    socket: PathBuf,
}

impl Tmux {
    /// A detached session of 80x50 running `command` (through `sh -c`), whose pane stays
    /// after it ends and shows `SEAL-EXIT=<code>`.
    fn start(command: &str) -> Tmux {
        let dir = tempfile::TempDir::new().unwrap();
        let socket = dir.path().join("tmux.sock");
        let tmux = Tmux { _dir: dir, socket };
        let script = format!("{command}; echo SEAL-EXIT=$?; sleep 600");
        let out = tmux
            .command()
            .args(["new-session", "-d", "-x", "80", "-y", "50", "-s", "seal"])
            .arg(script)
            .output()
            .expect("tmux is installed (scripts/install-system-packages.sh)");
        assert!(
            out.status.success(),
            "tmux new-session: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tmux
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.arg("-S").arg(&self.socket).env_remove("TMUX");
        cmd
    }

    /// The pane's text, wrapped rows joined, trailing blank lines dropped.
    fn capture(&self) -> String {
        let out = self
            .command()
            .args(["capture-pane", "-p", "-J", "-t", "seal"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).trim_end().to_string()
    }

    /// Capture until `done(pane)` holds (or fail after `limit`).
    fn wait_for(&self, limit: Duration, done: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let pane = self.capture();
            if done(&pane) {
                return pane;
            }
            assert!(
                started.elapsed() < limit,
                "the pane never showed what was expected:\n{pane}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command().arg("kill-server").output();
    }
}

/// No text wraps at 80 columns. A joined line is several rows the terminal wrapped; a row
/// that a redraw padded with spaces to the edge wraps too, harmlessly, so only a row whose
/// last column holds text counts as cut.
fn assert_fits(pane: &str) {
    for line in pane.lines() {
        let chars: Vec<char> = line.chars().collect();
        let mut row = 0;
        while chars.len() - row > WIDTH {
            assert!(
                chars[row + WIDTH - 1] == ' ',
                "text wraps at {WIDTH} columns:\n{line}\n--- pane ---\n{pane}"
            );
            row += WIDTH;
        }
    }
}

fn seal_command(seal: &Seal, cwd: &Path, args: &str) -> String {
    format!(
        "cd '{}' && '{}' --root '{}' {args}",
        cwd.display(),
        env!("CARGO_BIN_EXE_seal"),
        seal.root().display()
    )
}

#[test]
fn the_tty_view_of_a_build_while_it_runs_and_at_the_end() {
    let seal = Seal::new();
    let base = Ctx::new();
    let bin = base.path().join("rootfs/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).expect("busybox-static is installed");
    for applet in ["sh", "sleep", "echo"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    base.kubefile("FROM scratch\nCOPY rootfs/. .\n");
    seal.build_ok(base.path(), "bb:1", &[]);
    let ctx = Ctx::new();
    ctx.file("dir1/a", "a\n").kubefile(
        "FROM bb:1\n\
         COPY dir1 /data/with/a/rather/long/destination/directory/name/that/does/not/fit\n\
         RUN sleep 2 && echo done sleeping\n\
         COPY dir1 /b\n",
    );
    seal.build_ok(ctx.path(), "app:1", &[]);

    // The RUN again (--no-cache-filter 3), the COPYs from the cache.
    let tmux = Tmux::start(&seal_command(
        &seal,
        ctx.path(),
        "build -t app:1 --no-cache-filter 3 .",
    ));
    let running = tmux.wait_for(Duration::from_secs(30), |p| {
        p.contains("RUN sleep 2") && !p.contains("SEAL-EXIT=")
    });
    assert_fits(&running);
    let spinner = running
        .lines()
        .find(|l| l.contains("#3 [3/4] RUN sleep 2"))
        .unwrap_or_else(|| panic!("no live line for the RUN:\n{running}"));
    assert!(
        spinner.trim_end().ends_with('s'),
        "the live line ends with its clock: {spinner}"
    );
    assert!(running.contains("CACHED"), "{running}");

    let end = tmux.wait_for(Duration::from_secs(60), |p| p.contains("SEAL-EXIT="));
    assert!(end.contains("SEAL-EXIT=0"), "{end}");
    assert_fits(&end);
    // Rows as the terminal shows them (padding-wrapped rows split again).
    let rows: Vec<String> = end
        .lines()
        .flat_map(|l| {
            let chars: Vec<char> = l.chars().collect();
            chars
                .chunks(WIDTH)
                .map(|c| c.iter().collect::<String>().trim_end().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    let line = |needle: &str| {
        rows.iter()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle}:\n{end}"))
            .as_str()
    };
    assert_eq!(line("#1 ").trim(), "#1 [1/4] FROM bb:1 CACHED");
    // The long COPY title is cut, its status kept.
    let copy = line("#2 [2/4] COPY dir1 /data/");
    assert!(copy.ends_with("… CACHED"), "{copy}");
    let run = line("#3 [3/4] RUN sleep 2 && echo done sleeping DONE ");
    let time = run.rsplit(' ').next().unwrap();
    let seconds: f64 = time.trim_end_matches('s').parse().unwrap();
    assert!(seconds >= 2.0, "{run}");
    assert!(end.contains("#3 done sleeping"), "the step's output: {end}");
    assert_eq!(line("#4 ").trim(), "#4 [4/4] COPY dir1 /b CACHED");
    // The summary: name and short digest, then the counts and the time.
    let built = line("built docker.io/sealerio/app:1 sha256:");
    assert_eq!(
        built.len(),
        "built docker.io/sealerio/app:1 sha256:".len() + 13
    );
    let counts = line("steps cached");
    assert!(
        counts.starts_with("  3 steps cached, 1 executed, ") && counts.ends_with('s'),
        "{counts}"
    );
    assert!(counts.contains(" in "), "{counts}");
    // Spinners are gone at the end.
    assert!(!end.contains('⠁') && !end.contains('⠠'), "{end}");
}

#[test]
fn the_bench_table_in_a_terminal() {
    let seal = Seal::new();
    let ctx = Ctx::new();
    ctx.file("manifests/app.yaml", "kind: List\n")
        .file("bin/tool", "#!/bin/sh\n")
        .kubefile(
            "FROM scratch\nCOPY bin /usr/local/bin\nCOPY manifests /etc/kubernetes/manifests/with/a/long/path\n",
        );
    let tmux = Tmux::start(&seal_command(
        &seal,
        ctx.path(),
        "bench --runs 1 --build-mode lite .",
    ));
    let end = tmux.wait_for(Duration::from_secs(120), |p| p.contains("SEAL-EXIT="));
    assert!(end.contains("SEAL-EXIT=0"), "{end}");
    assert_fits(&end);
    let header = end
        .lines()
        .find(|l| l.starts_with("phase"))
        .unwrap_or_else(|| panic!("no phase table:\n{end}"));
    for column in ["median", "min", "max", "peak RSS", "steps run"] {
        assert!(header.contains(column), "{header}");
    }
    for phase in ["cold", "noop", "touch1", "change1"] {
        assert!(
            end.lines()
                .any(|l| l.starts_with(phase) && l.contains(" MiB ")),
            "no {phase} row:\n{end}"
        );
    }
    let last_copy = end
        .lines()
        .find(|l| l.starts_with("[3/3] COPY manifests"))
        .unwrap_or_else(|| panic!("no step row:\n{end}"));
    let cells: Vec<&str> = last_copy.split_whitespace().rev().take(4).collect();
    // change1, touch1, noop: the edited file is under manifests/, only change1 re-runs it.
    assert!(cells[0].ends_with('s'), "change1 ran: {last_copy}");
    assert_eq!(&cells[1..3], ["cached", "cached"], "{last_copy}");
    assert!(cells[3].ends_with('s'), "cold ran: {last_copy}");
}
