//! ADD's URL sources, as words of a Kubefile: what is a URL, the file name a download lands
//! under, and the `--checksum` syntax. No IO (the download itself is the engine's).

/// True when an ADD source is a URL (scheme `http` or `https`, any case).
pub fn is_url(word: &str) -> bool {
    strip_scheme(word).is_some()
}

fn strip_scheme(url: &str) -> Option<&str> {
    ["http://", "https://"].iter().find_map(|scheme| {
        let head = url.get(..scheme.len())?;
        head.eq_ignore_ascii_case(scheme)
            .then(|| &url[scheme.len()..])
    })
}

/// The file name a download lands under: the last segment of the URL's path, percent-decoded.
/// `None` when the URL has no host or its path ends without a usable name (`/`, `.`, `..`).
pub fn url_file_name(url: &str) -> Option<String> {
    let rest = strip_scheme(url)?;
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    let rest = &rest[..end];
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if host.is_empty() {
        return None;
    }
    let segment = path.rsplit('/').next().unwrap_or("");
    let name = percent_decode(segment)?;
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return None;
    }
    Some(name)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Parse a `--checksum` value: `sha256:` and 64 hex digits; returned in lower case.
pub fn parse_checksum(value: &str) -> Result<String, String> {
    let Some((algorithm, hex)) = value.split_once(':') else {
        return Err(format!(
            "--checksum={value}: expected `sha256:<64 hex digits>`"
        ));
    };
    if !algorithm.eq_ignore_ascii_case("sha256") {
        return Err(format!(
            "--checksum={value}: only sha256 is supported (`sha256:<64 hex digits>`)"
        ));
    }
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "--checksum={value}: a sha256 digest is 64 hex digits"
        ));
    }
    Ok(format!("sha256:{}", hex.to_ascii_lowercase()))
}
