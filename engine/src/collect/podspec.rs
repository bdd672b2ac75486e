//! Finding container images in parsed Kubernetes documents: every PodSpec's containers.
//!
//! The rules are the corpus oracle's (`shared/tools/expected-images.py`), exactly:
//! a PodSpec is the `spec` of a `Pod`, the `spec` under any `template` key at any depth
//! (workloads, Jobs, CronJob `jobTemplate.spec.template`, PodTemplates, custom resources shaped
//! the same way), and the same inside the `items` of any kind ending in `List`. Images anywhere
//! else (ConfigMap data, `spec.image` of a custom resource, container arguments) are not taken.

use super::yaml::Yaml;

const CONTAINER_KEYS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

/// An `image` value found in a PodSpec, not yet normalised.
#[derive(Debug, Clone, PartialEq)]
pub struct RawImage {
    /// The value as written (a non-string value is kept as its YAML node).
    pub value: Yaml,
    /// Where it is in its document, e.g. `spec.template.spec.containers[0].image`.
    pub field: String,
}

/// Every container image of one document, in document order.
pub fn document_images(doc: &Yaml) -> Vec<RawImage> {
    let mut found = Vec::new();
    document(doc, "", &mut found);
    found
}

fn document(doc: &Yaml, path: &str, found: &mut Vec<RawImage>) {
    let Yaml::Map(_) = doc else { return };
    let kind = doc.get("kind").and_then(Yaml::as_str);
    if let (Some(kind), Some(Yaml::Seq(items))) = (kind, doc.get("items")) {
        if kind.ends_with("List") {
            for (i, item) in items.iter().enumerate() {
                document(item, &format!("{path}items[{i}]."), found);
            }
            return;
        }
    }
    if kind == Some("Pod") {
        if let Some(spec) = doc.get("spec") {
            pod_spec(spec, &format!("{path}spec"), found);
        }
    }
    templates(doc, path.trim_end_matches('.'), found);
}

/// The PodSpec under every `template.spec`, at any depth.
fn templates(node: &Yaml, path: &str, found: &mut Vec<RawImage>) {
    match node {
        Yaml::Map(entries) => {
            if let Some(template @ Yaml::Map(_)) = node.get("template") {
                if let Some(spec) = template.get("spec") {
                    pod_spec(spec, &join(path, "template.spec"), found);
                }
            }
            for (key, value) in entries {
                templates(value, &join(path, key), found);
            }
        }
        Yaml::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                templates(item, &format!("{path}[{i}]"), found);
            }
        }
        _ => {}
    }
}

fn pod_spec(spec: &Yaml, path: &str, found: &mut Vec<RawImage>) {
    for key in CONTAINER_KEYS {
        let Some(Yaml::Seq(containers)) = spec.get(key) else {
            continue;
        };
        for (i, container) in containers.iter().enumerate() {
            if let Some(image) = container.get("image") {
                found.push(RawImage {
                    value: image.clone(),
                    field: format!("{path}.{key}[{i}].image"),
                });
            }
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::yaml::parse_documents;

    fn check(yaml: &str, expected: &[(&str, &str)]) {
        let found: Vec<(String, String)> = parse_documents(yaml)
            .unwrap()
            .iter()
            .flat_map(document_images)
            .map(|r| (r.value.scalar_text().unwrap_or_default(), r.field))
            .collect();
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(found, expected);
    }

    #[test]
    fn pods_and_workloads() {
        check(
            "kind: Pod\nspec:\n  initContainers: [{name: i, image: busybox}]\n  containers:\n  - {name: a, image: nginx}\n  ephemeralContainers: [{image: debug}]\n",
            &[
                ("nginx", "spec.containers[0].image"),
                ("busybox", "spec.initContainers[0].image"),
                ("debug", "spec.ephemeralContainers[0].image"),
            ],
        );
        check(
            "kind: Deployment\nspec:\n  template:\n    spec:\n      containers: [{image: a}, {name: noimage}, {image: b}]\n",
            &[
                ("a", "spec.template.spec.containers[0].image"),
                ("b", "spec.template.spec.containers[2].image"),
            ],
        );
    }

    #[test]
    fn cronjobs_lists_and_custom_resources() {
        check(
            "kind: CronJob\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          containers: [{image: hello}]\n",
            &[("hello", "spec.jobTemplate.spec.template.spec.containers[0].image")],
        );
        check(
            "kind: List\nitems:\n- kind: Pod\n  spec: {containers: [{image: p}]}\n- kind: ReplicaSet\n  spec: {template: {spec: {containers: [{image: r}]}}}\n",
            &[
                ("p", "items[0].spec.containers[0].image"),
                ("r", "items[1].spec.template.spec.containers[0].image"),
            ],
        );
        check(
            "kind: Whatever\nspec:\n  workers:\n  - template: {spec: {containers: [{image: w}]}}\n",
            &[("w", "spec.workers[0].template.spec.containers[0].image")],
        );
    }

    #[test]
    fn images_outside_pod_specs_are_ignored() {
        check(
            "kind: ConfigMap\ndata:\n  pod.yaml: 'spec: {containers: [{image: busybox}]}'\n",
            &[],
        );
        check(
            "kind: Prometheus\nspec:\n  image: quay.io/prometheus/prometheus\n",
            &[],
        );
        check(
            "kind: Deployment\nspec:\n  containers: [{image: not-a-pod-spec}]\n",
            &[],
        );
        check("- just\n- a list\n", &[]);
    }
}
