//! Image collection during `seal build`: images referenced by manifests and charts are pulled
//! from a real registry (the Debian `docker-registry` on 127.0.0.1) into the image's
//! `registry/` layer, which a second `docker-registry` then serves to `skopeo`.

mod common;

use std::path::{Path, PathBuf};

use common::registry::{ok, run_seal, Registry};
use common::{tool, Ctx, Out, SavedLayout, Seal};
use tempfile::TempDir;

/// The registry's storage is its own, or `root` served read-only.
fn start_registry(root: Option<&Path>) -> Option<Registry> {
    Registry::start(root, |_| String::new())
}

/// The request lines (`GET /v2/...`) a registry logged so far.
fn requests(registry: &Registry) -> Vec<String> {
    registry
        .access_log()
        .iter()
        .filter_map(|l| {
            let start = l.find('"')? + 1;
            let end = start + l[start..].find('"')?;
            Some(l[start..end].to_string())
        })
        .collect()
}

/// `seal <args>` in `cwd`, trusting `insecure` over plain HTTP, with no credentials.
fn seal_in(seal: &Seal, cwd: &Path, insecure: &str, args: &[&str]) -> Out {
    let args: Vec<&str> = ["--insecure-registry", insecure]
        .into_iter()
        .chain(args.iter().copied())
        .collect();
    run_seal(seal, Some(cwd), &cwd.join("no-auth.json"), &args, &[])
}

/// `seal build --progress plain <extra...> -t <tag> .` in `ctx`.
fn build_in(seal: &Seal, ctx: &Ctx, host: &str, tag: &str, extra: &[&str]) -> Out {
    let mut args = vec!["build", "--progress", "plain"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-t", tag, "."]);
    seal_in(seal, ctx.path(), host, &args)
}

/// The `sealer.image.container.images` annotation of a stored image.
fn collected(seal: &Seal, name: &str) -> String {
    let inspect = seal.inspect(name);
    inspect["annotations"]["sealer.image.container.images"]
        .as_str()
        .unwrap_or_else(|| panic!("no container images annotation: {inspect:#}"))
        .to_string()
}

/// Build a one-file image named `name` with seal and push it; returns its manifest digest.
fn push_image(seal: &Seal, registry: &Registry, name: &str, content: &str) -> String {
    let ctx = Ctx::new();
    ctx.file("app/content.txt", content)
        .kubefile("FROM scratch\nCOPY app app\n")
        .age();
    let build = build_in(seal, &ctx, &registry.host, name, &[]);
    let digest = build.digest();
    ok(
        &seal_in(seal, ctx.path(), &registry.host, &["push", name]),
        "push",
    );
    digest
}

/// A cluster context whose manifest and chart reference `app` and `tool`.
fn cluster_context(app: &str, tool_repo: &str, tool_tag: &str) -> Ctx {
    let ctx = Ctx::new();
    ctx.file(
        "manifests/deploy.yaml",
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: {app}\n"
        ),
    )
    .file(
        "charts/tool/Chart.yaml",
        "apiVersion: v2\nname: tool\nversion: 0.1.0\n",
    )
    .file(
        "charts/tool/values.yaml",
        format!("image:\n  repository: {tool_repo}\n  tag: \"{tool_tag}\"\n"),
    )
    .file(
        "charts/tool/templates/pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {{ .Release.Name }}-tool\nspec:\n  containers:\n    - name: tool\n      image: \"{{ .Values.image.repository }}:{{ .Values.image.tag }}\"\n",
    )
    .kubefile("FROM scratch\nCOPY manifests manifests\nCOPY charts charts\nCMD kubectl apply -f manifests\n")
    .age();
    ctx
}

/// The `registry/` tree of the image's top layer, extracted into a temp dir.
fn extract_registry(seal: &Seal, name: &str) -> (SavedLayout, PathBuf) {
    let saved = SavedLayout::new(seal, name);
    let top = saved.layer_blobs().pop().expect("a layer");
    let out = saved.dir.path().join("rootfs");
    std::fs::create_dir(&out).unwrap();
    tool(
        "tar",
        &["-xf", top.to_str().unwrap(), "-C", out.to_str().unwrap()],
        saved.dir.path(),
    );
    let registry = out.join("registry");
    assert!(registry.is_dir(), "the top layer has no registry/");
    (saved, registry)
}

fn skopeo_digest(reference: &str) -> String {
    let out = tool(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            "--format",
            "{{.Digest}}",
            &format!("docker://{reference}"),
        ],
        Path::new("/"),
    );
    out.trim().to_string()
}

/// Collection reads the rootfs up to the last step that may change manifests/, charts/,
/// application/apps/ or registry/: steps after it do not feed it, so they run while it pulls.
#[test]
fn collection_does_not_wait_for_steps_that_cannot_change_what_it_reads() {
    let ctx = Ctx::new();
    ctx.file("manifests/a.yaml", "kind: Pod\n")
        .file("bin/kubectl", "binary")
        .file("charts/c/Chart.yaml", "name: c\n")
        .kubefile("FROM scratch\nCOPY charts charts\nCOPY manifests .\nCOPY bin .\nCOPY bin usr/local/bin\n");
    let seal = Seal::new();
    let out = seal.run_in(ctx.path(), &["build", "--print-llb", "-t", "x:1", "."]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let def: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let nodes = def["nodes"].as_array().unwrap();
    let described = |needle: &str| {
        nodes
            .iter()
            .position(|n| {
                n["metadata"]["description"]
                    .as_str()
                    .is_some_and(|d| d.contains(needle))
            })
            .unwrap_or_else(|| panic!("no node {needle}"))
    };
    let collect = nodes
        .iter()
        .position(|n| n["op"]["collect"].is_object())
        .unwrap();
    let read: Vec<usize> = serde_json::from_value(
        nodes[nodes[collect]["inputs"][0].as_u64().unwrap() as usize]["inputs"].clone(),
    )
    .unwrap();
    assert!(read.contains(&described("COPY charts charts")));
    assert!(read.contains(&described("COPY manifests .")));
    assert!(!read.contains(&described("COPY bin .")), "{read:?}");
    assert!(
        !read.contains(&described("COPY bin usr/local/bin")),
        "{read:?}"
    );
}

#[test]
fn collected_images_are_served_from_the_registry_layer() {
    let Some(upstream) = start_registry(None) else {
        return;
    };
    let seal = Seal::new();
    let host = upstream.host.clone();
    let app = format!("{host}/team/app:1");
    let tool_image = format!("{host}/tools/tool:2");
    let app_digest = push_image(&seal, &upstream, &app, "app v1\n");
    let tool_digest = push_image(&seal, &upstream, &tool_image, "tool v2\n");

    let ctx = cluster_context(&app, &format!("{host}/tools/tool"), "2");
    let build = build_in(&seal, &ctx, &host, "cluster:1", &[]);
    build.assert_built();
    assert!(
        build.stderr.contains("2 container images in registry/"),
        "{}",
        build.stderr
    );
    // The annotation lists both, for the host platform.
    let annotation = collected(&seal, "cluster:1");
    let listed: serde_json::Value = serde_json::from_str(&annotation).unwrap();
    let refs: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["image"].as_str().unwrap())
        .collect();
    assert_eq!(refs, vec![app.as_str(), tool_image.as_str()]);

    // A second, stock registry serving the layer's registry/ gives skopeo the same images.
    let (_saved, root) = extract_registry(&seal, "cluster:1");
    let mirror = start_registry(Some(&root)).expect("mirror registry");
    let key = host.replace(':', "_");
    assert_eq!(
        skopeo_digest(&format!("{}/{key}/team/app:1", mirror.host)),
        app_digest
    );
    assert_eq!(
        skopeo_digest(&format!("{}/{key}/tools/tool:2", mirror.host)),
        tool_digest
    );
    let copied = TempDir::new().unwrap();
    tool(
        "skopeo",
        &[
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{}/{key}/team/app:1", mirror.host),
            &format!("oci:{}:app", copied.path().display()),
        ],
        Path::new("/"),
    );

    // A no-op rebuild asks for each tag's manifest once and fetches no blob.
    let before = requests(&upstream).len();
    let again = build_in(&seal, &ctx, &host, "cluster:1", &[]);
    assert_eq!(again.digest(), build.digest());
    assert_eq!(again.summary().executed, 0, "{}", again.stderr);
    let made: Vec<String> = requests(&upstream)[before..].to_vec();
    assert!(
        made.iter().all(|r| !r.contains("/blobs/")),
        "a no-op rebuild fetched blobs: {made:#?}"
    );
    let manifests = made.iter().filter(|r| r.contains("/manifests/")).count();
    assert_eq!(manifests, 2, "one manifest check per tag: {made:#?}");

    // --pull never asks nothing at all.
    let before = requests(&upstream).len();
    let offline = build_in(&seal, &ctx, &host, "cluster:1", &["--pull", "never"]);
    assert_eq!(offline.digest(), build.digest());
    assert_eq!(
        requests(&upstream).len(),
        before,
        "--pull never made requests"
    );

    // Moving a tag upstream re-pulls that image, and only the registry layer is rebuilt.
    let app_v2 = push_image(&seal, &upstream, &app, "app v1, rebuilt\n");
    assert_ne!(app_v2, app_digest);
    let moved = build_in(&seal, &ctx, &host, "cluster:1", &[]);
    moved.assert_built();
    assert_ne!(moved.digest(), build.digest());
    assert_eq!(moved.summary().executed, 0, "{}", moved.stderr);
    let (_saved, root) = extract_registry(&seal, "cluster:1");
    let mirror = start_registry(Some(&root)).expect("mirror registry");
    assert_eq!(
        skopeo_digest(&format!("{}/{key}/team/app:1", mirror.host)),
        app_v2
    );
}

#[test]
fn image_lists_build_mode_lite_and_pull_failures() {
    let Some(upstream) = start_registry(None) else {
        return;
    };
    let seal = Seal::new();
    let host = upstream.host.clone();
    let app = format!("{host}/team/app:1");
    let extra = format!("{host}/team/extra:1");
    push_image(&seal, &upstream, &app, "app\n");
    push_image(&seal, &upstream, &extra, "extra\n");
    let ctx = cluster_context(&app, &format!("{host}/team/app"), "1");
    ctx.file("lists/add.txt", format!("# more\n\n{extra}\n"))
        .file("lists/ignore.txt", format!("{app}\n"));

    // --image-list adds, --ignored-image-list removes.
    let out = build_in(
        &seal,
        &ctx,
        &host,
        "c:1",
        &[
            "--image-list",
            "lists/add.txt",
            "--ignored-image-list",
            "lists/ignore.txt",
        ],
    );
    out.assert_built();
    let annotation = collected(&seal, "c:1");
    assert!(annotation.contains(&extra), "{annotation}");
    assert!(!annotation.contains(&app), "{annotation}");

    // --build-mode lite: no registry layer, no annotation.
    let lite = build_in(&seal, &ctx, &host, "c:lite", &["--build-mode", "lite"]);
    lite.assert_built();
    let manifest = &seal.inspect("c:lite");
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 2);
    assert!(manifest["annotations"]
        .get("sealer.image.container.images")
        .is_none());

    // A manifest that is not valid YAML: a warning with file:line, and the line rule still
    // finds its image.
    ctx.file(
        "manifests/broken.yaml",
        format!("kind: Pod\nspec: [unclosed\n  image: {extra}\n"),
    );
    // A chart that renders no PodSpec is noted, never silently empty.
    ctx.file(
        "charts/rbac/Chart.yaml",
        "apiVersion: v2\nname: rbac\nversion: 0.1.0\n",
    )
    .file(
        "charts/rbac/templates/sa.yaml",
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: x\n",
    );
    let warned = build_in(&seal, &ctx, &host, "c:warn", &[]);
    warned.assert_built();
    assert!(
        // A warning of the collection step, through the renderer (issue 12.6).
        warned.stderr.contains("WARNING: manifests/broken.yaml"),
        "{}",
        warned.stderr
    );
    assert!(
        warned
            .stderr
            .contains("chart rbac rendered 1 document and no PodSpec with an image"),
        "{}",
        warned.stderr
    );
    std::fs::remove_dir_all(ctx.path().join("charts/rbac")).unwrap();
    assert!(
        !warned.stderr.contains("/tmp/"),
        "a scratch path leaked: {}",
        warned.stderr
    );
    let annotation = collected(&seal, "c:warn");
    assert!(annotation.contains(&extra), "{annotation}");
    std::fs::remove_file(ctx.path().join("manifests/broken.yaml")).unwrap();
    // A chart whose Chart.yaml is not YAML fails the build, naming the chart's rootfs path.
    ctx.file("charts/bad/Chart.yaml", ": not yaml [")
        .file("charts/bad/templates/x.yaml", "a: b\n");
    let bad_chart = build_in(&seal, &ctx, &host, "c:badchart", &[]);
    assert_ne!(bad_chart.code, 0);
    assert!(
        bad_chart.stderr.contains("charts/bad"),
        "{}",
        bad_chart.stderr
    );
    assert!(
        !bad_chart.stderr.contains("/tmp/"),
        "a scratch path leaked: {}",
        bad_chart.stderr
    );
    std::fs::remove_dir_all(ctx.path().join("charts/bad")).unwrap();

    // An invalid line in an image list is reported with file:line.
    ctx.file("lists/bad.txt", "ok:1\nNot A Valid Ref!\n");
    let bad = seal_in(
        &seal,
        ctx.path(),
        &host,
        &["build", "--image-list", "lists/bad.txt", "-t", "c:2", "."],
    );
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("lists/bad.txt:2"), "{}", bad.stderr);

    // An image the registry lacks fails the build with its name and the registry's answer.
    let missing = format!("{host}/team/missing:9");
    let ctx = cluster_context(&missing, &format!("{host}/team/app"), "1");
    let failed = build_in(&seal, &ctx, &host, "c:3", &[]);
    assert_ne!(failed.code, 0, "{}", failed.stderr);
    assert!(failed.stderr.contains(&missing), "{}", failed.stderr);
    assert!(failed.stderr.contains("not found"), "{}", failed.stderr);
    let inspect = seal.run_in(ctx.path(), &["inspect", "c:3"]);
    assert_ne!(inspect.code, 0, "a failed build must not name an image");
}

#[test]
fn chart_values_for_one_chart_change_what_is_collected() {
    let Some(upstream) = start_registry(None) else {
        return;
    };
    let seal = Seal::new();
    let host = upstream.host.clone();
    let app = format!("{host}/team/app:1");
    let other = format!("{host}/team/other:3");
    push_image(&seal, &upstream, &app, "app\n");
    push_image(&seal, &upstream, &other, "other\n");
    let ctx = cluster_context(&app, &format!("{host}/team/app"), "1");
    ctx.file(
        "values/tool.yaml",
        format!("image:\n  repository: {host}/team/other\n  tag: \"3\"\n"),
    );
    let out = build_in(
        &seal,
        &ctx,
        &host,
        "c:1",
        &["--chart-values", "charts/tool=values/tool.yaml"],
    );
    out.assert_built();
    let annotation = collected(&seal, "c:1");
    assert!(annotation.contains(&other), "{annotation}");
    assert!(annotation.contains(&app), "{annotation}");
    // Values for a chart path where there is no chart fail the build instead of being
    // ignored.
    let typo = build_in(
        &seal,
        &ctx,
        &host,
        "c:typo",
        &["--chart-values", "charts/tol=values/tool.yaml"],
    );
    assert_ne!(typo.code, 0, "{}", typo.stderr);
    assert!(
        typo.stderr.contains("charts/tol") && typo.stderr.contains("no chart at this path"),
        "{}",
        typo.stderr
    );
    // A chart that does not render names the chart and the template line.
    ctx.file(
        "charts/tool/templates/broken.yaml",
        "a: b\nimage: {{ required \"image.missing is required\" .Values.image.missing }}\n",
    );
    let failed = build_in(&seal, &ctx, &host, "c:2", &[]);
    assert_ne!(failed.code, 0);
    assert!(failed.stderr.contains("chart tool"), "{}", failed.stderr);
    assert!(failed.stderr.contains("broken.yaml:2"), "{}", failed.stderr);
}

#[test]
fn blobs_in_the_base_images_registry_are_not_stored_again() {
    let Some(upstream) = start_registry(None) else {
        return;
    };
    let seal = Seal::new();
    let host = upstream.host.clone();
    let app = format!("{host}/team/app:1");
    let more = format!("{host}/team/more:1");
    push_image(&seal, &upstream, &app, "app\n");
    push_image(&seal, &upstream, &more, "more\n");
    let base = cluster_context(&app, &format!("{host}/team/app"), "1");
    build_in(&seal, &base, &host, "base:1", &[]).assert_built();
    // A cluster image on top of it: its own manifest adds `more`; `app` is in the base's
    // registry/ already.
    let ctx = Ctx::new();
    ctx.file(
        "extra/more.yaml",
        format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: more\nspec:\n  containers:\n    - name: more\n      image: {more}\n"),
    )
    .kubefile("FROM base:1\nCOPY extra manifests\n")
    .age();
    let out = build_in(&seal, &ctx, &host, "top:1", &[]);
    out.assert_built();
    assert!(out.stderr.contains("2 container images"), "{}", out.stderr);
    let (saved, registry) = extract_registry(&seal, "top:1");
    let blob_files: Vec<String> = walk(&registry.join("docker/registry/v2/blobs"))
        .into_iter()
        .filter(|p| p.ends_with("/data"))
        .collect();
    // Only `more`'s manifest, config and layer: `app`'s are in the base's layer.
    assert_eq!(blob_files.len(), 3, "{blob_files:#?}");
    // Both layers' registry/ trees together serve both images.
    let merged = saved.dir.path().join("merged");
    std::fs::create_dir(&merged).unwrap();
    for layer in saved.layer_blobs() {
        let listing = tool("tar", &["-tf", layer.to_str().unwrap()], saved.dir.path());
        if listing.lines().any(|l| l.starts_with("registry/")) {
            tool(
                "tar",
                &[
                    "-xf",
                    layer.to_str().unwrap(),
                    "-C",
                    merged.to_str().unwrap(),
                    "registry",
                ],
                saved.dir.path(),
            );
        }
    }
    let mirror = start_registry(Some(&merged.join("registry"))).expect("mirror registry");
    let key = host.replace(':', "_");
    for reference in [&app, &more] {
        let path = reference.strip_prefix(&format!("{host}/")).unwrap();
        let digest = skopeo_digest(&format!("{}/{key}/{path}", mirror.host));
        assert!(digest.starts_with("sha256:"), "{reference}: {digest}");
    }
}

/// Every file under `dir`, as paths.
fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.display().to_string());
            }
        }
    }
    out
}

/// A small differential test of collection's cache: seeded random edits of what the rootfs
/// references and of what the registry holds. After each, the incremental build must equal a
/// `--no-cache` build in a fresh store, and the registry layer must be rebuilt exactly when the
/// resolved list (reference, digest) is one this store has not built before (content
/// addressing: going back to an earlier list reuses its layer).
#[test]
fn collection_cache_follows_references_and_tags() {
    let Some(upstream) = start_registry(None) else {
        return;
    };
    let seal = Seal::new();
    let host = upstream.host.clone();
    let pool: Vec<String> = (0..4).map(|i| format!("{host}/pool/img{i}:v1")).collect();
    let mut digests: Vec<String> = pool
        .iter()
        .enumerate()
        .map(|(i, r)| push_image(&seal, &upstream, r, &format!("img{i} gen0\n")))
        .collect();
    let ctx = cluster_context(&pool[0], &format!("{host}/pool/img1"), "v1");
    let mut manifest_image = 0usize;
    let mut listed: Vec<usize> = vec![2];
    let mut generation = 0;
    let write_context = |manifest_image: usize, listed: &[usize], note: u32| {
        ctx.file(
            "manifests/deploy.yaml",
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\n  labels: {{note: \"{note}\"}}\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: {}\n",
                pool[manifest_image]
            ),
        );
        let list: String = listed.iter().map(|&i| format!("{}\n", pool[i])).collect();
        ctx.file("manifests/imageList", list);
        ctx.age();
    };
    let mut note = 0u32;
    write_context(manifest_image, &listed, note);
    let expected = |manifest_image: usize, listed: &[usize], digests: &[String]| {
        let mut set: Vec<(usize, String)> = std::iter::once(manifest_image)
            .chain(std::iter::once(1)) // the chart's image
            .chain(listed.iter().copied())
            .map(|i| (i, digests[i].clone()))
            .collect();
        set.sort();
        set.dedup();
        set
    };
    let mut seen: std::collections::BTreeSet<Vec<(usize, String)>> = Default::default();
    let mut state = 0x9e37_79b9_u64;
    let mut rng = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut kinds = std::collections::BTreeMap::<&str, usize>::new();
    // Every kind of edit twice, with random parameters.
    for round in 0..11 {
        let kind = if round == 0 {
            "initial"
        } else {
            match (round - 1) % 5 {
                0 => {
                    let i = (rng() % 4) as usize;
                    generation += 1;
                    digests[i] = push_image(
                        &seal,
                        &upstream,
                        &pool[i],
                        &format!("img{i} gen{generation}\n"),
                    );
                    "retag-upstream"
                }
                1 => {
                    manifest_image = (manifest_image + 1 + (rng() % 3) as usize) % 4;
                    "switch-manifest-image"
                }
                2 => {
                    let i = (rng() % 4) as usize;
                    if let Some(pos) = listed.iter().position(|&x| x == i) {
                        listed.remove(pos);
                        "image-list-remove"
                    } else {
                        listed.push(i);
                        "image-list-add"
                    }
                }
                3 => {
                    note += 1;
                    "manifest-cosmetic"
                }
                _ => "no-edit",
            }
        };
        *kinds.entry(kind).or_default() += 1;
        write_context(manifest_image, &listed, note);
        let want = expected(manifest_image, &listed, &digests);
        let incremental = build_in(&seal, &ctx, &host, "diff:1", &[]);
        incremental.assert_built();
        let clean_store = Seal::new();
        let clean = build_in(&clean_store, &ctx, &host, "diff:1", &["--no-cache"]);
        clean.assert_built();
        assert_eq!(
            incremental.digest(),
            clean.digest(),
            "round {round} ({kind}): incremental != clean\n{}",
            incremental.stderr
        );
        let rebuilt = incremental.stderr.contains("writing registry/");
        let new = seen.insert(want);
        assert_eq!(
            rebuilt, new,
            "round {round} ({kind}): registry layer rebuilt = {rebuilt}, resolved list new = {new}\n{}",
            incremental.stderr
        );
    }
    eprintln!("collection differential: {kinds:?}");
}
