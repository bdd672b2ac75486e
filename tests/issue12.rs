//! Issue 12 ("a CLI that never lies"), points 4-9 and 12, each against the real binary:
//! corrupt and missing blobs, closed pipes and full disks, warnings through the renderer,
//! misleading text, inconsistent interfaces, collection failures, and the conveniences users
//! reach for first.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::registry::{ok, run_seal, Registry};
use common::{Ctx, Out, Seal};
use sha2::{Digest as _, Sha256};

/// A one-COPY image context.
fn copy_context() -> Ctx {
    let ctx = Ctx::new();
    ctx.file("app/data.txt", "some data\n")
        .kubefile("FROM scratch\nCOPY app app\n")
        .age();
    ctx
}

/// The store path of an image's first layer blob.
fn first_layer(seal: &Seal, name: &str) -> PathBuf {
    let inspect = seal.inspect(name);
    let digest = inspect["layers"][0]["digest"].as_str().expect("a layer");
    seal.root()
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").expect("sha256"))
}

/// Flip one byte in the middle of a file, in place (as a disk or a stray write would).
fn corrupt(path: &Path) {
    let mut bytes = std::fs::read(path).expect("reading the blob");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x55;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("opening the blob");
    file.write_all(&bytes).expect("writing the blob");
}

fn sha256_hex(path: &Path) -> String {
    hex(&Sha256::digest(std::fs::read(path).expect("reading")))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `seal <args>` with stdout going to `stdout` and stderr captured.
fn with_stdout(seal: &Seal, cwd: &Path, args: &[&str], stdout: Stdio) -> Out {
    let mut cmd = seal.command();
    cmd.current_dir(cwd).args(args).stdout(stdout);
    Out::from_command(cmd)
}

fn assert_no_panic(out: &Out, what: &str) {
    assert!(
        !out.stderr.contains("panicked") && out.code != 101,
        "{what} panicked:\n{}",
        out.stderr
    );
}

/// Issue 12.4: every save format refuses a corrupt blob (naming it and the repair), a
/// rebuild re-creates it instead of succeeding on top of it, an image built on a corrupt base
/// fails, and a missing blob suggests `seal fsck --repair`.
#[test]
fn issue12_4_corrupt_blobs_are_refused_and_rewritten() {
    let ctx = copy_context();
    let seal = Seal::new();
    seal.build_ok(ctx.path(), "app:1", &[]);
    let blob = first_layer(&seal, "app:1");
    let name = blob.file_name().unwrap().to_str().unwrap().to_string();
    corrupt(&blob);
    let out_dir = tempfile::tempdir().unwrap();
    for format in ["oci-archive", "oci-dir", "docker-archive"] {
        let target = out_dir.path().join(format);
        let out = seal.run_in(
            ctx.path(),
            &[
                "save",
                "--format",
                format,
                "-o",
                target.to_str().unwrap(),
                "app:1",
            ],
        );
        assert_eq!(
            out.code, 1,
            "save --format {format} accepted a corrupt blob"
        );
        assert!(
            out.stderr
                .contains(&format!("blob sha256:{name} is corrupt"))
                && out.stderr.contains("seal fsck --repair"),
            "{format}: {}",
            out.stderr
        );
        assert!(!target.exists(), "{format} left {}", target.display());
    }
    let streamed = with_stdout(
        &seal,
        ctx.path(),
        &["save", "-o", "-", "app:1"],
        Stdio::piped(),
    );
    assert_eq!(streamed.code, 1, "save -o - accepted a corrupt blob");
    assert!(
        streamed.stderr.contains("is corrupt"),
        "{}",
        streamed.stderr
    );

    // An image on top of the corrupt one fails instead of naming the bad blob again.
    let top = Ctx::new();
    top.file("more.txt", "more\n")
        .kubefile("FROM app:1\nCOPY more.txt .\n")
        .age();
    let on_top = seal.build(top.path(), "top:1", &[]);
    assert_eq!(on_top.code, 1, "a build on a corrupt base succeeded");
    assert!(on_top.stderr.contains("is corrupt"), "{}", on_top.stderr);

    // The rebuild of the image itself runs the COPY again and writes the blob anew.
    let rebuild = seal.build_ok(ctx.path(), "app:1", &[]);
    assert_eq!(rebuild.step("COPY app app"), common::Step::Done);
    assert_eq!(sha256_hex(&blob), name, "the blob was not re-created");
    seal.build_ok(top.path(), "top:1", &[]);
    let fine = out_dir.path().join("fine.tar");
    seal.save("app:1", &fine);

    // A missing blob names the repair.
    std::fs::remove_file(&blob).unwrap();
    let missing = seal.run_in(
        ctx.path(),
        &[
            "save",
            "-o",
            out_dir.path().join("m.tar").to_str().unwrap(),
            "app:1",
        ],
    );
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("is missing from the store")
            && missing.stderr.contains("seal fsck --repair"),
        "{}",
        missing.stderr
    );
}

/// Issue 12.5: a closed pipe ends a command quietly with a broken pipe's status (141), a full
/// disk is an error (exit 1 with a message); neither panics.
#[test]
fn issue12_5_closed_pipes_and_full_disks() {
    let ctx = copy_context();
    let seal = Seal::new();
    for tag in ["a:1", "b:1", "c:1"] {
        seal.build_ok(ctx.path(), tag, &[]);
    }
    let commands: [&[&str]; 6] = [
        &["images"],
        &["inspect", "a:1"],
        &["du"],
        &["build", "--print-llb", "-t", "d:1", "."],
        &["build", "--progress", "plain", "-t", "d:1", "."],
        &["save", "a:1"],
    ];
    for args in commands {
        let (reader, writer) = std::io::pipe().expect("a pipe");
        drop(reader);
        let closed = with_stdout(&seal, ctx.path(), args, Stdio::from(writer));
        assert_no_panic(&closed, &format!("{args:?} into a closed pipe"));
        assert_eq!(
            closed.code, 141,
            "{args:?} into a closed pipe:\n{}",
            closed.stderr
        );
        assert!(
            !closed.stderr.contains("error"),
            "{args:?}: a closed pipe is not an error:\n{}",
            closed.stderr
        );
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full");
        let full = with_stdout(&seal, ctx.path(), args, Stdio::from(full));
        assert_no_panic(&full, &format!("{args:?} >/dev/full"));
        assert_eq!(full.code, 1, "{args:?} >/dev/full:\n{}", full.stderr);
        assert!(
            full.stderr.contains("No space left on device"),
            "{args:?} >/dev/full:\n{}",
            full.stderr
        );
    }
    // What a user types: `seal images | head -1`.
    let shell = Command::new("bash")
        .arg("-c")
        .arg(r#""$SEAL" --root "$ROOT" images | head -1; echo "status=${PIPESTATUS[0]}""#)
        .env("SEAL", env!("CARGO_BIN_EXE_seal"))
        .env("ROOT", seal.root())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&shell.stdout);
    let stderr = String::from_utf8_lossy(&shell.stderr);
    assert!(
        stderr.is_empty(),
        "seal images | head -1 printed:\n{stderr}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{stdout}");
    assert!(
        lines[1] == "status=0" || lines[1] == "status=141",
        "{stdout}"
    );
}

/// Run `python3 -c 'import json,sys; [json.loads(l) for l in sys.stdin]'` on `text`: every
/// line must be JSON.
fn python_accepts_json_lines(text: &str) {
    let mut child = Command::new("python3")
        .args(["-c", "import json,sys; [json.loads(l) for l in sys.stdin]"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "a line is not JSON:\n{}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Issue 12.6: the socket a RUN leaves (a layer cannot hold one) and an unused build-arg are warnings of the renderer:
/// rootfs paths, JSON events in json mode, `WARNING` lines in plain mode, no raw log lines.
#[test]
fn issue12_6_warnings_go_through_the_renderer() {
    let ctx = Ctx::new();
    ctx.file("d/file.txt", "f\n").kubefile(
        "FROM scratch\nCOPY d d\nRUN mkdir -p etc && python3 -c \"import socket; socket.socket(socket.AF_UNIX).bind('etc/sock')\" && echo x > etc/x\n",
    );
    common::tool("mkfifo", &["d/pipe"], ctx.path());
    let seal = Seal::new();
    let mut cmd = seal.command();
    cmd.current_dir(ctx.path()).args([
        "build",
        "--progress",
        "json",
        "--build-arg",
        "NOPE=1",
        "-t",
        "w:1",
        ".",
    ]);
    let json = Out::from_command(cmd);
    assert_eq!(json.code, 0, "{}", json.stderr);
    python_accepts_json_lines(&json.stderr);
    let events: Vec<serde_json::Value> = json
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let warnings: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "warning")
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert!(
        warnings.iter().any(|w| w.contains("`etc/sock`")),
        "no socket warning in {warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w.contains("NOPE")),
        "no build-arg warning in {warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("`d/pipe` of the build context")),
        "no context fifo warning in {warnings:?}"
    );
    let context = ctx.path().display().to_string();
    assert!(
        !json.stderr.contains(&context),
        "a warning names a host path:\n{}",
        json.stderr
    );
    let store = seal.root().display().to_string();
    assert!(
        !json.stderr.contains(&store) && !json.stderr.contains("upper/"),
        "a warning names an internal path:\n{}",
        json.stderr
    );
    let fifo = events
        .iter()
        .find(|e| e["event"] == "warning" && e["message"].as_str().unwrap().contains("`etc/sock`"))
        .unwrap();
    assert!(
        fifo["name"].as_str().unwrap().contains("RUN mkdir"),
        "the socket warning names no step: {fifo}"
    );
    let plain = seal.build(ctx.path(), "w:1", &["--no-cache", "--build-arg", "NOPE=1"]);
    assert_eq!(plain.code, 0, "{}", plain.stderr);
    assert!(
        plain.stderr.contains("WARNING: not recording `etc/sock`")
            && plain.stderr.contains("warning: build-arg `NOPE`"),
        "{}",
        plain.stderr
    );
    assert!(
        !plain.stderr.contains('\x1b') && !plain.stderr.contains(" WARN "),
        "a raw log line reached stderr:\n{}",
        plain.stderr
    );
    // Failures are JSON events too: a bad Kubefile (exit 1), a bad flag value (exit 2).
    let broken = Ctx::new();
    broken.kubefile("FROM scratch\nCPOY a b\n");
    for (dir, extra, code) in [
        (broken.path(), None, 1),
        (ctx.path(), Some("--no-cache-filter=nope"), 2),
    ] {
        let mut cmd = seal.command();
        cmd.current_dir(dir)
            .args(["build", "--progress", "json", "-t", "w:2"])
            .args(extra)
            .arg(".");
        let out = Out::from_command(cmd);
        assert_eq!(out.code, code, "{}", out.stderr);
        python_accepts_json_lines(&out.stderr);
        assert!(out.stderr.contains(r#""event":"error""#), "{}", out.stderr);
    }
}

/// Issue 12.7: no promise of a later release, no cause said twice, `images` fails on what it
/// cannot read, the README tells how credentials are found, the registry/ layer has its
/// history entry (checked in `issue12_9`), and a comment inside a continuation is not part of
/// the command.
#[test]
fn issue12_7_messages_say_true_things() {
    let seal = Seal::new();
    let ctx = Ctx::new();
    ctx.kubefile("FROM 127.0.0.1:1/nothing:1\n");
    let from = run_seal(
        &seal,
        Some(ctx.path()),
        &ctx.path().join("no-auth.json"),
        &[
            "--insecure-registry",
            "127.0.0.1:1",
            "build",
            "--progress",
            "plain",
            "-t",
            "x:1",
            ".",
        ],
        &[],
    );
    assert_eq!(from.code, 1);
    assert!(
        !from.stderr.contains("later release") && from.stderr.contains("seal pull"),
        "{}",
        from.stderr
    );

    let ctx = Ctx::new();
    ctx.kubefile("FROM scratch\nRUN echo one \\\n# a comment\n  two three > esc.txt\n");
    let build = seal.build_ok(ctx.path(), "esc:1", &[]);
    assert!(
        build.stderr.contains("RUN echo one two three > esc.txt")
            && !build.stderr.contains("a comment"),
        "{}",
        build.stderr
    );
    let history = seal.inspect("esc:1")["history"].clone();
    let created: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["created_by"].as_str())
        .collect();
    assert!(
        created.contains(&"RUN echo one two three > esc.txt"),
        "{created:?}"
    );

    // A cause is said once: an IO error inside a store error used to print twice.
    let save = seal.run_in(
        ctx.path(),
        &["save", "-o", "/nonexistent-dir/x.tar", "esc:1"],
    );
    assert_eq!(save.code, 1);
    assert_eq!(
        save.stderr.matches("No such file or directory").count(),
        1,
        "{}",
        save.stderr
    );

    // A store this user may not read: no `0 B` sizes, a failure, each cause said once.
    let parent = seal.root().parent().unwrap();
    std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755)).unwrap();
    let as_nobody = |args: &[&str]| {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_seal"))
            .arg("--root")
            .arg(seal.root())
            .args(args)
            .current_dir("/");
        Out::from_command(cmd)
    };
    // Opening the store for writing: the lock file's error, said once.
    let rmi = as_nobody(&["rmi", "esc:1"]);
    assert_eq!(rmi.code, 1, "{}", rmi.stderr);
    assert_eq!(
        rmi.stderr.matches("Permission denied").count(),
        1,
        "{}",
        rmi.stderr
    );
    let nobody = as_nobody(&["images"]);
    assert_eq!(nobody.code, 1, "{}\n{}", nobody.stdout, nobody.stderr);
    assert!(!nobody.stdout.contains(" 0 B"), "{}", nobody.stdout);
    assert!(
        nobody.stderr.contains("Permission denied")
            && !nobody.stderr.contains("(os error 13): Permission denied"),
        "{}",
        nobody.stderr
    );

    // An image whose manifest is gone is not listed as `0 B` either.
    let digest = seal.inspect("esc:1")["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let manifest = seal
        .root()
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap());
    std::fs::remove_file(&manifest).unwrap();
    let images = seal.run_in(ctx.path(), &["images"]);
    assert_eq!(images.code, 1, "{}", images.stdout);
    assert!(!images.stdout.contains(" 0 B"), "{}", images.stdout);
    assert!(
        images.stderr.contains("docker.io/sealerio/esc:1") && images.stderr.contains("seal fsck"),
        "{}",
        images.stderr
    );

    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    assert!(
        !readme.contains("helpers are not used") && readme.contains("credHelpers"),
        "the README misdescribes credential helpers"
    );
}

/// Issue 12.8: `save -o -` and `save` into a pipe write the archive to stdout, archives
/// honour the umask, `scan` takes a packaged chart, bad stage names are usage errors with a
/// suggestion, and `--progress tty` without a terminal still shows the steps.
#[test]
fn issue12_8_consistent_interfaces() {
    let ctx = copy_context();
    let seal = Seal::new();
    seal.build_ok(ctx.path(), "app:1", &[]);
    let dir = tempfile::tempdir().unwrap();
    for format in ["oci-archive", "docker-archive"] {
        let file = dir.path().join(format!("{format}.tar"));
        let out = seal.run_in(
            ctx.path(),
            &[
                "save",
                "--format",
                format,
                "-o",
                file.to_str().unwrap(),
                "app:1",
            ],
        );
        assert_eq!(out.code, 0, "{}", out.stderr);
        let expected = std::fs::read(&file).unwrap();
        for args in [
            vec!["save", "--format", format, "-o", "-", "app:1"],
            vec!["save", "--format", format, "app:1"],
        ] {
            let mut cmd = seal.command();
            cmd.current_dir(ctx.path()).args(&args);
            let out = cmd.output().unwrap();
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                out.stdout == expected,
                "{args:?} wrote other bytes than -o FILE"
            );
        }
        assert!(
            !ctx.path().join("-").exists(),
            "save -o - wrote a file named -"
        );
    }
    for (umask, mode) in [("022", 0o644), ("077", 0o600)] {
        let file = dir.path().join(format!("umask{umask}.tar"));
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "umask {umask}; exec \"$SEAL\" --root \"$ROOT\" save -o \"$OUT\" app:1"
            ))
            .env("SEAL", env!("CARGO_BIN_EXE_seal"))
            .env("ROOT", seal.root())
            .env("OUT", &file)
            .status()
            .unwrap();
        assert!(status.success());
        let actual = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(actual, mode, "umask {umask}");
    }

    // A packaged chart given alone.
    let mut tgz = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    for (path, text) in [
        (
            "web/Chart.yaml",
            "apiVersion: v2\nname: web\nversion: 0.1.0\n",
        ),
        (
            "web/templates/pod.yaml",
            "kind: Pod\nspec:\n  containers:\n    - name: a\n      image: nginx:1.25\n",
        ),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(text.len() as u64);
        h.set_mode(0o644);
        tgz.append_data(&mut h, path, text.as_bytes()).unwrap();
    }
    let chart = dir.path().join("web-0.1.0.tgz");
    std::fs::write(&chart, tgz.into_inner().unwrap().finish().unwrap()).unwrap();
    let scan = seal.run_in(dir.path(), &["scan", chart.to_str().unwrap()]);
    assert_eq!(scan.code, 0, "{}", scan.stderr);
    assert_eq!(scan.stdout.trim(), "docker.io/library/nginx:1.25");

    // Stage names: both flags are usage errors with a suggestion.
    let stages = Ctx::new();
    stages
        .file("a.txt", "a\n")
        .kubefile(
            "FROM scratch AS builder\nCOPY a.txt .\nFROM scratch AS final\nCOPY a.txt b.txt\n",
        )
        .age();
    for flag in ["--target", "--no-cache-filter"] {
        let out = seal.build(stages.path(), "s:1", &[flag, "buidler"]);
        assert_eq!(out.code, 2, "{flag}: {}", out.stderr);
        assert!(
            out.stderr.contains("did you mean `builder`") && out.stderr.contains("builder, final"),
            "{flag}: {}",
            out.stderr
        );
    }

    // `--progress tty` into a pipe shows the steps.
    let mut cmd = seal.command();
    cmd.current_dir(ctx.path())
        .args(["build", "--progress", "tty", "-t", "app:1", "."]);
    let tty = Out::from_command(cmd);
    assert_eq!(tty.code, 0, "{}", tty.stderr);
    assert!(
        tty.stderr.contains("[2/2] COPY app app"),
        "no step shown:\n{}",
        tty.stderr
    );
}

/// Issue 12.8 and 12.6: in a terminal 40 columns wide the live view cuts long step titles,
/// so no drawn line wraps, and warnings are printed by the view (a spinner is always cleared
/// before anything else is written, so none is left behind).
#[test]
fn issue12_8_the_tty_view_fits_the_terminal() {
    let ctx = Ctx::new();
    let long = "x".repeat(120);
    ctx.file(&format!("{long}.txt"), "x\n")
        .kubefile(&format!(
            "FROM scratch\nCOPY {long}.txt somewhere/with/a/long/destination/path\n\
             RUN sleep 1 && python3 -c \"import socket; socket.socket(socket.AF_UNIX).bind('sock')\"\n"
        ))
        .age();
    let seal = Seal::new();
    // A pseudo-terminal 40 columns wide; what seal draws, escapes removed, split into the
    // lines indicatif draws.
    let script = r#"
import os, pty, sys, fcntl, termios, struct, re
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 40, 0, 0))
    os.execv(sys.argv[1], sys.argv[1:])
out = b""
while True:
    try:
        chunk = os.read(fd, 65536)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
_, status = os.waitpid(pid, 0)
text = out.decode("utf-8", "replace")
# A spinner line is followed by a redraw (carriage return, newline or an escape), never by
# text written past the view: that would leave the spinner on the screen.
for m in re.finditer(r"[\u2800-\u28ff] #[^\r\n\x1b]*", text):
    rest = text[m.end():m.end() + 1]
    if rest not in ("", "\r", "\n", "\x1b"):
        print("stale-spinner", repr(text[m.start():m.end() + 40]))
        sys.exit(0)
if "`sock`" not in text or "NOPE" not in text:
    print("no-warnings", repr(text))
    sys.exit(0)
# indicatif pads each line to the width and lets the terminal wrap to the next one, so a
# line also ends where a spinner glyph or the summary begins.
segments = re.split(r"\x1b\[[0-9;?]*[A-Za-z]|\r|\n|(?=[\u2800-\u28ff] #)|(?=built )", text)
# The digest on stdout and the closing summary (a terminal shows it in two lines: name and
# short digest, then the counts) come after the view and may wrap.
segments = [s for s in segments
            if not s.startswith(("sha256:", "built ")) and not re.match(r"  \d+ steps cached", s)]
width = max((len(s) for s in segments), default=0)
print(os.waitstatus_to_exitcode(status), width)
"#;
    let out = Command::new("python3")
        .args(["-c", script, env!("CARGO_BIN_EXE_seal"), "--root"])
        .arg(seal.root())
        .args([
            "build",
            "--progress",
            "tty",
            "--build-arg",
            "NOPE=1",
            "-t",
            "t:1",
        ])
        .arg(ctx.path())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    let mut words = report.split_whitespace();
    let code: i32 = words.next().and_then(|w| w.parse().ok()).unwrap_or(-1);
    let width: usize = words
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or(usize::MAX);
    assert_eq!(code, 0, "{report}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        width <= 40,
        "a drawn line is {width} columns wide in a 40-column terminal"
    );
}

/// Push a one-file image `name` to `registry`; returns its manifest digest and size.
fn push(seal: &Seal, registry: &Registry, name: &str) -> (String, u64) {
    let ctx = Ctx::new();
    ctx.file("app/data.txt", name)
        .kubefile("FROM scratch\nCOPY app app\n")
        .age();
    let auth = ctx.path().join("no-auth.json");
    let build = run_seal(
        seal,
        Some(ctx.path()),
        &auth,
        &[
            "build",
            "--build-mode",
            "lite",
            "--progress",
            "plain",
            "-t",
            name,
            ".",
        ],
        &[],
    );
    let digest = build.digest();
    ok(
        &run_seal(
            seal,
            Some(ctx.path()),
            &auth,
            &["--insecure-registry", &registry.host, "push", name],
            &[],
        ),
        "push",
    );
    let size = std::fs::metadata(
        seal.root()
            .join("blobs/sha256")
            .join(digest.strip_prefix("sha256:").unwrap()),
    )
    .unwrap()
    .len();
    (digest, size)
}

/// PUT a manifest document into `registry` under `repo:tag`.
fn put_manifest(registry: &Registry, repo: &str, tag: &str, media_type: &str, body: &str) {
    let mut stream = std::net::TcpStream::connect(&registry.host).unwrap();
    write!(
        stream,
        "PUT /v2/{repo}/manifests/{tag} HTTP/1.1\r\nHost: {}\r\nContent-Type: {media_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        registry.host,
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "PUT manifest: {answer}");
}

/// Issue 12.9 (and the history entry of 12.7): collection resolves every image before it
/// fails, listing each failure once; "no image for platform" says which platforms exist.
#[test]
fn issue12_9_collection_lists_every_failure() {
    let Some(registry) = Registry::start(None, |_| String::new()) else {
        return;
    };
    let seal = Seal::new();
    let host = registry.host.clone();
    let (digest, size) = push(&seal, &registry, &format!("{host}/team/app:1"));
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{digest}","size":{size},"platform":{{"architecture":"s390x","os":"linux"}}}}]}}"#
    );
    put_manifest(
        &registry,
        "team/app",
        "other-arch",
        "application/vnd.oci.image.index.v1+json",
        &index,
    );

    // One good image: the build works and the registry/ layer has a history entry.
    let good = Ctx::new();
    good.file("manifests/imageList", format!("{host}/team/app:1\n"))
        .kubefile("FROM scratch\nCOPY manifests manifests\n")
        .age();
    let auth = good.path().join("no-auth.json");
    let build = |ctx: &Ctx, tag: &str| {
        run_seal(
            &seal,
            Some(ctx.path()),
            &auth,
            &[
                "--insecure-registry",
                &format!("{host},127.0.0.1:1"),
                "build",
                "--progress",
                "plain",
                "-t",
                tag,
                ".",
            ],
            &[],
        )
    };
    let out = build(&good, "good:1");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let inspect = seal.inspect("good:1");
    let layers = inspect["config"]["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .len();
    let entries = inspect["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["empty_layer"] != true)
        .count();
    assert_eq!(entries, layers, "history: {:#}", inspect["history"]);
    assert!(
        inspect["history"].to_string().contains("registry/"),
        "{:#}",
        inspect["history"]
    );

    // A FROM pull inside `--progress json` shows its transfers as JSON events.
    let fresh = Seal::new();
    let from = Ctx::new();
    from.kubefile(&format!("FROM {host}/team/app:1\n"));
    let pulled = run_seal(
        &fresh,
        Some(from.path()),
        &auth,
        &[
            "--insecure-registry",
            &host,
            "build",
            "--progress",
            "json",
            "-t",
            "from:1",
            ".",
        ],
        &[],
    );
    assert_eq!(pulled.code, 0, "{}", pulled.stderr);
    python_accepts_json_lines(&pulled.stderr);
    assert!(pulled.stderr.contains("pulling"), "{}", pulled.stderr);

    // Three that fail for different reasons, one that works: one build names all three.
    let bad = Ctx::new();
    bad.file(
        "manifests/imageList",
        format!(
            "{host}/team/app:1\n{host}/team/app:other-arch\n127.0.0.1:1/gone/a:1\n127.0.0.1:1/gone/b:1\n"
        ),
    )
    .kubefile("FROM scratch\nCOPY manifests manifests\n")
    .age();
    let out = build(&bad, "bad:1");
    assert_eq!(out.code, 1, "{}", out.stderr);
    for failed in [
        format!("{host}/team/app:other-arch"),
        "127.0.0.1:1/gone/a:1".to_string(),
        "127.0.0.1:1/gone/b:1".to_string(),
    ] {
        assert!(
            out.stderr.contains(&format!("cannot pull {failed}")),
            "{failed} is not listed:\n{}",
            out.stderr
        );
    }
    assert!(
        out.stderr.contains("3 of 4 images failed"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("(it has linux/s390x)"),
        "the platforms that exist are not named:\n{}",
        out.stderr
    );
}

/// Issue 12.12: `images -q`, `images NAME`, several `-t`, `inspect NAME@sha256:...` and
/// `inspect <digest prefix>`.
#[test]
fn issue12_12_names_digests_and_filters() {
    let ctx = copy_context();
    let seal = Seal::new();
    let digest = seal.digest(ctx.path(), "kube:v1", &["-t", "kube:v2", "-t", "other:1"]);
    let quiet = seal.run_in(ctx.path(), &["images", "-q"]);
    assert_eq!(
        quiet.stdout,
        "docker.io/sealerio/kube:v1\ndocker.io/sealerio/kube:v2\ndocker.io/sealerio/other:1\n"
    );
    let repo = seal.run_in(ctx.path(), &["images", "-q", "kube"]);
    assert_eq!(
        repo.stdout,
        "docker.io/sealerio/kube:v1\ndocker.io/sealerio/kube:v2\n"
    );
    let one = seal.run_in(ctx.path(), &["images", "kube:v2"]);
    assert_eq!(one.stdout.lines().count(), 2, "{}", one.stdout);
    assert!(one.stdout.contains("kube:v2") && !one.stdout.contains("kube:v1"));
    let hex = digest.strip_prefix("sha256:").unwrap();
    for name in [
        format!("kube@{digest}"),
        format!("kube:v2@{digest}"),
        digest.clone(),
        hex[..8].to_string(),
        format!("sha256:{}", &hex[..6]),
    ] {
        let inspect = seal.inspect(&name);
        assert_eq!(inspect["digest"], digest.as_str(), "inspect {name}");
    }
    let wrong = seal.run_in(
        ctx.path(),
        &["inspect", &format!("kube@sha256:{}", "0".repeat(64))],
    );
    assert_eq!(wrong.code, 1, "{}", wrong.stdout);
}
