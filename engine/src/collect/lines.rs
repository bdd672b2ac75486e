//! The fallback for files that are not valid YAML: `<key ending in image>: <value>` lines.
//!
//! Such files are usually templates of some other tool (a `.tmpl` with `${VAR}` or `{{ }}` in
//! it). Values that are themselves templated cannot be resolved and are skipped with a note.

/// An image value found by the line rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineImage {
    /// 1-based line number.
    pub line: usize,
    /// The key, e.g. `image` or `sidecarImage`.
    pub key: String,
    /// The value, unquoted, without a trailing comment.
    pub value: String,
}

/// What the line rule found: images, and templated values it had to skip (line, value).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LineScan {
    pub images: Vec<LineImage>,
    pub skipped: Vec<(usize, String)>,
}

/// Scan `text` line by line.
pub fn scan(text: &str) -> LineScan {
    let mut out = LineScan::default();
    for (i, line) in text.lines().enumerate() {
        let Some((key, value)) = image_line(line) else {
            continue;
        };
        if value.contains("{{") || value.contains("${") || value.contains("$(") {
            out.skipped.push((i + 1, value));
        } else {
            out.images.push(LineImage {
                line: i + 1,
                key,
                value,
            });
        }
    }
    out
}

/// `(key, value)` when the line is `[- ]<key ending in image>: <value>`.
fn image_line(line: &str) -> Option<(String, String)> {
    let mut rest = line.trim_start();
    if rest.starts_with('#') {
        return None;
    }
    if let Some(after_dash) = rest.strip_prefix("- ") {
        rest = after_dash.trim_start();
    }
    let (key, value) = rest.split_once(':')?;
    let key = key.trim().trim_matches(|c| c == '"' || c == '\'');
    let valid_key = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && key.to_ascii_lowercase().ends_with("image");
    if !valid_key {
        return None;
    }
    // `key:value` is not a mapping entry in YAML; the separator needs a space after it.
    if !(value.is_empty() || value.starts_with([' ', '\t'])) {
        return None;
    }
    let value = unquote(strip_comment(value.trim()));
    if value.is_empty() {
        return None;
    }
    Some((key.to_string(), value.to_string()))
}

fn strip_comment(value: &str) -> &str {
    if value.starts_with(['"', '\'']) {
        return value;
    }
    match value.find(" #") {
        Some(i) => value[..i].trim_end(),
        None => value,
    }
}

fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|v| v.split(quote).next())
        {
            return inner;
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_ending_in_image() {
        let text = "spec:\n  containers:\n  - image: nginx:1.25 # pinned\n    imagePullPolicy: Always\n  sidecarImage: \"quay.io/a/b:v1\"\n  # image: commented\n  image: '{{ .Values.image }}'\n  notanimage:x\n  baseImage:\n";
        let scan = scan(text);
        let found: Vec<(usize, &str, &str)> = scan
            .images
            .iter()
            .map(|i| (i.line, i.key.as_str(), i.value.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (3, "image", "nginx:1.25"),
                (5, "sidecarImage", "quay.io/a/b:v1")
            ]
        );
        assert_eq!(scan.skipped, [(7, "{{ .Values.image }}".to_string())]);
    }
}
