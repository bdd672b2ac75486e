//! Multi-platform builds (issue 19): `seal build --platform linux/amd64,linux/arm64` stores an
//! image index, shares the steps whose inputs are the same for both platforms, pushes the
//! index with every manifest, and collects each platform's container images.

mod common;

use std::path::Path;

use common::registry::{ok, run_seal, Registry};
use common::{tool, Ctx, Out, Seal};

/// `seal <args>` in `cwd`, trusting `insecure` over plain HTTP, with no credentials.
fn seal_in(seal: &Seal, cwd: &Path, insecure: &str, args: &[&str]) -> Out {
    let args: Vec<&str> = ["--insecure-registry", insecure]
        .into_iter()
        .chain(args.iter().copied())
        .collect();
    run_seal(seal, Some(cwd), &cwd.join("no-auth.json"), &args, &[])
}

const BOTH: &str = "linux/amd64,linux/arm64";

/// Build `ctx` for both platforms as `tag` (plain progress) and push it.
fn build_and_push(seal: &Seal, ctx: &Ctx, host: &str, tag: &str) -> Out {
    let args = [
        "build",
        "--progress",
        "plain",
        "--platform",
        BOTH,
        "-t",
        tag,
        ".",
    ];
    let built = seal_in(seal, ctx.path(), host, &args);
    ok(&built, "seal build --platform");
    ok(
        &seal_in(seal, ctx.path(), host, &["push", tag]),
        "seal push",
    );
    built
}

/// The file names of a layer blob of the store (any compression tar reads).
fn layer_files(seal: &Seal, digest: &str) -> Vec<String> {
    let blob = seal
        .root()
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    let listing = tool("tar", &["-tf", blob.to_str().unwrap()], seal.root());
    listing.lines().map(str::to_string).collect()
}

/// Every file of a platform's image (all its layers).
fn image_files(seal: &Seal, image: &serde_json::Value) -> Vec<String> {
    image["layers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| layer_files(seal, l["digest"].as_str().unwrap()))
        .collect()
}

#[test]
fn a_two_platform_cluster_image_on_a_two_platform_base() {
    let Some(registry) = Registry::start(None, |_| String::new()) else {
        return;
    };
    let host = registry.host.clone();
    let seal = Seal::new();

    // The base: a two-platform index seal builds and pushes itself.
    let base = Ctx::new();
    base.file("base.txt", "shared base\n")
        .file("arch/amd64/os", "amd64 os\n")
        .file("arch/arm64/os", "arm64 os\n")
        .kubefile("FROM scratch\nCOPY base.txt etc/\nCOPY arch/${ARCH} etc/arch\n");
    let base_ref = format!("{host}/base:v1");
    build_and_push(&seal, &base, &host, &base_ref);
    let raw = tool(
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{base_ref}"),
        ],
        base.path(),
    );
    let index: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        index["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{raw}"
    );
    let archs: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(archs, ["amd64", "arm64"]);

    // A two-platform container image the cluster's manifests reference.
    let app = Ctx::new();
    app.file("app/amd64/app", "amd64 app\n")
        .file("app/arm64/app", "arm64 app\n")
        .kubefile("FROM scratch\nCOPY app/${ARCH} bin\n");
    let app_ref = format!("{host}/app:1");
    build_and_push(&seal, &app, &host, &app_ref);

    // The cluster image: shared manifests, per-platform binaries.
    let cluster = Ctx::new();
    cluster
        .file("manifests/pod.yaml", format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\nspec:\n  containers:\n  - name: a\n    image: {app_ref}\n"))
        .file("bin/amd64/kubectl", "amd64 kubectl\n")
        .file("bin/arm64/kubectl", "arm64 kubectl\n")
        .kubefile(&format!("FROM {base_ref}\nCOPY manifests manifests\nCOPY bin/${{ARCH}} bin\n"));
    let cluster_ref = format!("{host}/cluster:v1");
    // Another store: the base comes from the registry, both platforms of its index.
    let app_store = seal;
    let seal = Seal::new();
    let first = build_and_push(&seal, &cluster, &host, &cluster_ref);
    // The shared COPY ran once: the second platform found it cached.
    let steps = first.steps();
    let manifests: Vec<_> = steps
        .iter()
        .filter(|(d, _)| d.contains("COPY manifests"))
        .collect();
    assert_eq!(manifests.len(), 2, "{}", first.stderr);
    assert_eq!(
        manifests
            .iter()
            .filter(|(_, s)| **s == common::Step::Done)
            .count(),
        1,
        "{}",
        first.stderr
    );
    assert!(
        first.stderr.contains("for linux/amd64, linux/arm64"),
        "{}",
        first.stderr
    );

    let raw = tool(
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{cluster_ref}"),
        ],
        cluster.path(),
    );
    let pushed: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(pushed["manifests"].as_array().unwrap().len(), 2, "{raw}");

    // Each platform's image: its own binaries, base files and container images.
    let inspect = seal.inspect(&cluster_ref);
    let platforms = inspect["platforms"].as_array().unwrap();
    assert_eq!(platforms.len(), 2, "{inspect:#}");
    for image in platforms {
        let platform = image["platform"].as_str().unwrap();
        let arch = platform.rsplit('/').next().unwrap();
        let other = if arch == "amd64" { "arm64" } else { "amd64" };
        assert_eq!(image["config"]["architecture"], arch);
        let files = image_files(&seal, image);
        // `COPY bin/${ARCH} bin` copies the directory under its name (the seed's COPY rule).
        assert!(files.contains(&format!("bin/{arch}/kubectl")), "{files:?}");
        assert!(
            !files.iter().any(|f| f.contains(&format!("bin/{other}"))),
            "{files:?}"
        );
        assert!(files.contains(&format!("etc/arch/{arch}/os")), "{files:?}");
        let annotation = image["annotations"]["sealer.image.container.images"]
            .as_str()
            .unwrap();
        assert!(
            annotation.contains(&format!("\"architecture\":\"{arch}\"")),
            "{annotation}"
        );
        assert!(!annotation.contains(other), "{annotation}");
        // The registry/ layer holds the app's manifest for this platform only.
        let app_index = app_store.inspect(&app_ref);
        let want = app_index["platforms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["platform"] == platform)
            .unwrap()["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
            .to_string();
        assert!(
            files.iter().any(|f| f.contains(&want)),
            "{platform}: no {want} in {files:?}"
        );
        let unwanted = app_index["platforms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["platform"] != platform)
            .unwrap()["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
            .to_string();
        assert!(
            !files.iter().any(|f| f.contains(&unwanted)),
            "{platform}: {unwanted} in {files:?}"
        );
    }
    // The base's and the manifests' layers are shared; the binaries' are not.
    let (amd, arm) = (&platforms[0]["layers"], &platforms[1]["layers"]);
    assert_eq!(amd[0], arm[0]);
    assert_eq!(amd[2], arm[2]);
    assert_ne!(amd[3], arm[3]);

    // A rebuild executes nothing.
    let again = seal_in(
        &seal,
        cluster.path(),
        &host,
        &[
            "build",
            "--progress",
            "plain",
            "--platform",
            BOTH,
            "-t",
            &cluster_ref,
            ".",
        ],
    );
    ok(&again, "rebuild");
    assert_eq!(again.summary().executed, 0, "{}", again.stderr);

    // `seal pull --platform` of both stores the registry's index itself; of one, its image.
    let puller = Seal::new();
    let both = ok(
        &seal_in(
            &puller,
            cluster.path(),
            &host,
            &["pull", "--platform", BOTH, &base_ref],
        ),
        "pull both",
    );
    let base_index = app_store.inspect(&base_ref);
    assert_eq!(both, base_index["digest"].as_str().unwrap());
    let one = Seal::new();
    let arm = ok(
        &seal_in(
            &one,
            cluster.path(),
            &host,
            &["pull", "--platform", "linux/arm64", &base_ref],
        ),
        "pull arm64",
    );
    assert_eq!(arm, base_index["platforms"][1]["digest"].as_str().unwrap());
    let missing = seal_in(
        &one,
        cluster.path(),
        &host,
        &["pull", "--platform", "linux/amd64,linux/s390x", &base_ref],
    );
    assert_ne!(missing.code, 0);
    assert!(
        missing.stderr.contains("no image for platform linux/s390x")
            && missing.stderr.contains("linux/amd64, linux/arm64"),
        "{}",
        missing.stderr
    );

    // `seal images` lists the platforms.
    let images = ok(
        &seal_in(&seal, cluster.path(), &host, &["images"]),
        "seal images",
    );
    assert!(
        images
            .lines()
            .any(|l| l.starts_with(&cluster_ref) && l.contains("linux/amd64, linux/arm64")),
        "{images}"
    );
}

#[test]
fn a_foreign_platform_run_in_lite_mode_fails_at_its_line() {
    let seal = Seal::new();
    let ctx = Ctx::new();
    ctx.kubefile("FROM scratch\nCOPY a a\nRUN true\n")
        .file("a", "a\n");
    let foreign = if cfg!(target_arch = "aarch64") {
        "linux/amd64"
    } else {
        "linux/arm64"
    };
    let out = seal.build(
        ctx.path(),
        "x:1",
        &["--platform", foreign, "--mode", "lite"],
    );
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("lite mode") && out.stderr.contains("Kubefile:3"),
        "{}",
        out.stderr
    );
}

#[test]
fn platform_build_args_follow_buildkit() {
    let seal = Seal::new();
    let ctx = Ctx::new();
    ctx.file("x/arm64/f", "arm\n").kubefile(
        "FROM scratch\nARG TARGETPLATFORM\nARG BUILDARCH\nLABEL t=$TARGETPLATFORM v=${TARGETVARIANT} b=$BUILDARCH\nCOPY x/${ARCH} out\n",
    );
    let out = seal.build_ok(ctx.path(), "x:1", &["--platform", "linux/arm64"]);
    let inspect = seal.inspect("x:1");
    let labels = &inspect["config"]["config"]["Labels"];
    assert_eq!(labels["t"], "linux/arm64", "{}", out.stderr);
    assert_eq!(labels["v"], "");
    let host = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    };
    assert_eq!(labels["b"], host);
    assert_eq!(inspect["config"]["architecture"], "arm64");
}

#[test]
fn a_referenced_image_without_the_platform_fails_unless_ignored() {
    let Some(registry) = Registry::start(None, |_| String::new()) else {
        return;
    };
    let host = registry.host.clone();
    let seal = Seal::new();
    // An amd64-only image (one manifest, no index).
    let app = Ctx::new();
    app.file("a", "a\n").kubefile("FROM scratch\nCOPY a a\n");
    let app_ref = format!("{host}/amd-only:1");
    let built = seal_in(
        &seal,
        app.path(),
        &host,
        &["build", "--platform", "linux/amd64", "-t", &app_ref, "."],
    );
    ok(&built, "build amd-only");
    ok(
        &seal_in(&seal, app.path(), &host, &["push", &app_ref]),
        "push amd-only",
    );

    let cluster = Ctx::new();
    cluster
        .file("manifests/pod.yaml", format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\nspec:\n  containers:\n  - name: a\n    image: {app_ref}\n"))
        .file("ignored.txt", format!("{app_ref}\n"))
        .kubefile("FROM scratch\nCOPY manifests manifests\n");
    let args = [
        "build",
        "--progress",
        "plain",
        "--platform",
        BOTH,
        "-t",
        "c:1",
        ".",
    ];
    let failed = seal_in(&seal, cluster.path(), &host, &args);
    assert_ne!(failed.code, 0, "{}", failed.stderr);
    assert!(
        failed
            .stderr
            .contains(&format!("{app_ref} has no image for platform linux/arm64"))
            && failed.stderr.contains("linux/amd64"),
        "{}",
        failed.stderr
    );
    let ignored = [
        "build",
        "--progress",
        "plain",
        "--platform",
        BOTH,
        "--ignored-image-list",
        "ignored.txt",
        "-t",
        "c:1",
        ".",
    ];
    ok(
        &seal_in(&seal, cluster.path(), &host, &ignored),
        "build with the image ignored",
    );
}

#[test]
fn save_and_load_keep_the_index_or_pick_platforms() {
    let seal = Seal::new();
    let ctx = Ctx::new();
    ctx.file("b/amd64/x", "amd\n")
        .file("b/arm64/x", "arm\n")
        .kubefile("FROM scratch\nCOPY b/${ARCH} bin\n");
    let index = seal.digest(ctx.path(), "multi:1", &["--platform", BOTH]);
    let inspect = seal.inspect("multi:1");
    let arm = inspect["platforms"][1]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let save = |file: &str, extra: &[&str]| {
        let path = dir.path().join(file);
        let mut args = vec!["save", "-o", path.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.push("multi:1");
        (seal.run_in(dir.path(), &args), path)
    };

    // The whole image: the index, which skopeo reads and a fresh store loads as it was.
    let (out, all) = save("all.tar", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let raw = tool(
        "skopeo",
        &[
            "inspect",
            "--raw",
            &format!("oci-archive:{}", all.display()),
        ],
        dir.path(),
    );
    assert!(
        raw.contains("\"manifests\"") && raw.contains("arm64"),
        "{raw}"
    );
    let other = Seal::new();
    let loaded = other.run_in(dir.path(), &["load", "-i", all.to_str().unwrap()]);
    assert_eq!(loaded.code, 0, "{}", loaded.stderr);
    assert_eq!(other.inspect("multi:1")["digest"], index.as_str());
    assert_eq!(
        other.inspect("multi:1")["platforms"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // One platform: a plain image of it.
    let (out, one) = save("arm.tar", &["--platform", "linux/arm64"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let third = Seal::new();
    let loaded = third.run_in(dir.path(), &["load", "-i", one.to_str().unwrap()]);
    assert_eq!(loaded.code, 0, "{}", loaded.stderr);
    assert_eq!(third.inspect("multi:1")["digest"], arm.as_str());

    // A platform it lacks, and a docker archive of two platforms, are errors that say so.
    let (out, _) = save("none.tar", &["--platform", "linux/s390x"]);
    assert!(
        out.code != 0 && out.stderr.contains("no image for platform linux/s390x"),
        "{}",
        out.stderr
    );
    let (out, _) = save("docker.tar", &["--format", "docker-archive"]);
    assert!(
        out.code != 0 && out.stderr.contains("--platform"),
        "{}",
        out.stderr
    );
    let (out, _) = save(
        "docker-arm.tar",
        &["--format", "docker-archive", "--platform", "linux/arm64"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);

    // gc follows the index to every platform: pruning the whole cache keeps both images whole.
    let pruned = seal.run_in(dir.path(), &["prune", "--all"]);
    assert_eq!(pruned.code, 0, "{}", pruned.stderr);
    let fsck = seal.run_in(dir.path(), &["fsck"]);
    assert!(
        fsck.code == 0 && fsck.stdout.contains("no problems"),
        "{}{}",
        fsck.stdout,
        fsck.stderr
    );
    let (out, _) = save("after-prune.tar", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn a_build_platform_stage_runs_once_for_every_target() {
    let seal = Seal::new();
    let ctx = Ctx::new();
    let bin = ctx.path().join("rootfs/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(ctx.path().join("rootfs/tmp")).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", bin.join("sh")).unwrap();
    ctx.file("bin/amd64/k", "amd\n")
        .file("bin/arm64/k", "arm\n")
        .kubefile(
            "FROM --platform=$BUILDPLATFORM scratch AS tools\n\
         COPY rootfs/. .\n\
         RUN /bin/busybox uname -m > built-on\n\
         FROM scratch\n\
         COPY --from=tools /built-on /out/built-on\n\
         COPY bin/${ARCH} bin\n",
        );
    let out = seal.build_ok(ctx.path(), "tools:1", &["--platform", BOTH]);
    // The tools stage is the host's for both targets: its RUN ran once.
    let runs: Vec<_> = out
        .steps()
        .into_iter()
        .filter(|(d, _)| d.contains("RUN"))
        .collect();
    assert_eq!(runs.len(), 2, "{}", out.stderr);
    assert_eq!(
        runs.iter()
            .filter(|(_, s)| *s == common::Step::Done)
            .count(),
        1,
        "{}",
        out.stderr
    );
    let inspect = seal.inspect("tools:1");
    for image in inspect["platforms"].as_array().unwrap() {
        let files = image_files(&seal, image);
        assert!(files.contains(&"out/built-on".to_string()), "{files:?}");
        let arch = image["platform"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap();
        assert!(files.contains(&format!("bin/{arch}/k")), "{files:?}");
        assert_eq!(image["config"]["architecture"], arch);
    }

    // A RUN that declares TARGETARCH depends on the target: it runs once per platform (in
    // container mode, where the foreign platform's RUN may run: this busybox is the host's).
    let qemu = if cfg!(target_arch = "aarch64") {
        "qemu-x86_64"
    } else {
        "qemu-aarch64"
    };
    if Path::new("/proc/sys/fs/binfmt_misc").join(qemu).exists() {
        ctx.kubefile(
            "FROM scratch\nCOPY rootfs/. .\nARG TARGETARCH\nRUN echo $TARGETARCH > /arch\n",
        );
        let out = seal.build_ok(
            ctx.path(),
            "tools:3",
            &["--platform", BOTH, "--mode", "container"],
        );
        let runs: Vec<_> = out
            .steps()
            .into_iter()
            .filter(|(d, _)| d.contains("RUN"))
            .collect();
        assert_eq!(
            runs.iter()
                .filter(|(_, s)| *s == common::Step::Done)
                .count(),
            2,
            "{}",
            out.stderr
        );
    }

    // A stage of a foreign platform refuses its RUN in lite mode, at the RUN.
    let foreign = if cfg!(target_arch = "aarch64") {
        "linux/amd64"
    } else {
        "linux/arm64"
    };
    ctx.kubefile(&format!(
        "FROM --platform={foreign} scratch AS tools\nCOPY rootfs/. .\nRUN true\nFROM scratch\nCOPY --from=tools /bin bin\n"
    ));
    let out = seal.build(ctx.path(), "tools:2", &[]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("Kubefile:3") && out.stderr.contains(&format!("RUN for {foreign}")),
        "{}",
        out.stderr
    );
}
