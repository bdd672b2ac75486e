//! Semantic versions and constraints as Masterminds/semver v3 reads them (Sprig's
//! `semverCompare`, Helm's dependency version matching).
//!
//! The rule that matters most in charts: a constraint without a prerelease never matches a
//! prerelease version, which is why charts write `>=1.21-0` to accept `v1.21.3-gke.100`.

use std::cmp::Ordering;

/// A parsed version (`v` prefix and missing minor/patch allowed, as in `NewVersion`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    pub prerelease: String,
    pub metadata: String,
}

impl Version {
    /// Parse a version the lenient way (`1`, `v1.2`, `1.2.3-rc.1+build`).
    pub fn parse(s: &str) -> Result<Version, String> {
        let bad = || format!("invalid semantic version `{s}`");
        let t = s.trim();
        let t = t.strip_prefix('v').unwrap_or(t);
        let (t, metadata) = match t.split_once('+') {
            Some((a, m)) => (a, m.to_string()),
            None => (t, String::new()),
        };
        let (core, prerelease) = match t.split_once('-') {
            Some((a, p)) => (a, p.to_string()),
            None => (t, String::new()),
        };
        let ident_ok = |x: &str| {
            x.split('.')
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        };
        if (!prerelease.is_empty() && !ident_ok(&prerelease))
            || (!metadata.is_empty() && !ident_ok(&metadata))
        {
            return Err(bad());
        }
        let parts: Vec<&str> = core.split('.').collect();
        if parts.is_empty() || parts.len() > 3 {
            return Err(bad());
        }
        let mut nums = [0u64; 3];
        for (i, p) in parts.iter().enumerate() {
            if p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            nums[i] = p.parse().map_err(|_| bad())?;
        }
        Ok(Version {
            major: nums[0],
            minor: nums[1],
            patch: nums[2],
            prerelease,
            metadata,
        })
    }

    /// Precedence order (metadata ignored).
    pub fn compare(&self, other: &Version) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| compare_prerelease(&self.prerelease, &other.prerelease))
    }
}

fn compare_prerelease(a: &str, b: &str) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        _ => {}
    }
    let mut left = a.split('.');
    let mut right = b.split('.');
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(i), Ok(j)) => i.cmp(&j),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    (Err(_), Err(_)) => x.cmp(y),
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
        }
    }
}

/// A constraint: `||`-separated groups of `,`- or space-separated comparisons.
#[derive(Debug, Clone)]
pub struct Constraint {
    groups: Vec<Vec<Comparison>>,
}

#[derive(Debug, Clone)]
struct Comparison {
    op: Op,
    version: Version,
    /// Some part was a wildcard or missing (`1.2`, `1.x`).
    dirty: bool,
    minor_dirty: bool,
    patch_dirty: bool,
    /// The major version was a wildcard: anything goes.
    any: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Tilde,
    Caret,
}

impl Constraint {
    /// Parse a constraint string.
    pub fn parse(s: &str) -> Result<Constraint, String> {
        let mut groups = Vec::new();
        for group in s.split("||") {
            let mut comparisons = Vec::new();
            let tokens = tokenize(group);
            let mut i = 0;
            while i < tokens.len() {
                // A hyphen range: `1.2 - 1.4.5`.
                if i + 2 < tokens.len() && tokens[i + 1] == "-" {
                    comparisons.push(comparison(&format!(">={}", tokens[i]), s)?);
                    comparisons.push(comparison(&format!("<={}", tokens[i + 2]), s)?);
                    i += 3;
                    continue;
                }
                comparisons.push(comparison(&tokens[i], s)?);
                i += 1;
            }
            if comparisons.is_empty() {
                return Err(format!("improper constraint: {s}"));
            }
            groups.push(comparisons);
        }
        Ok(Constraint { groups })
    }

    /// Does `v` satisfy the constraint?
    pub fn check(&self, v: &Version) -> bool {
        self.groups
            .iter()
            .any(|group| group.iter().all(|c| c.check(v)))
    }
}

/// Split a group into comparisons, joining an operator written apart from its version
/// (`>= 1.2`).
fn tokenize(group: &str) -> Vec<String> {
    let mut tokens: Vec<String> = Vec::new();
    let mut pending_op = String::new();
    for word in group.split([',', ' ', '\t']).filter(|w| !w.is_empty()) {
        if word.chars().all(|c| "<>=!~^".contains(c)) {
            pending_op.push_str(word);
            continue;
        }
        tokens.push(format!("{pending_op}{word}"));
        pending_op.clear();
    }
    tokens
}

fn comparison(token: &str, whole: &str) -> Result<Comparison, String> {
    let split = token
        .find(|c: char| !"<>=!~^".contains(c))
        .unwrap_or(token.len());
    let (op, rest) = token.split_at(split);
    let op = match op {
        "" | "=" | "==" => Op::Eq,
        "!=" => Op::Ne,
        ">" => Op::Gt,
        ">=" | "=>" => Op::Ge,
        "<" => Op::Lt,
        "<=" | "=<" => Op::Le,
        "~" | "~>" => Op::Tilde,
        "^" => Op::Caret,
        _ => return Err(format!("improper constraint: {whole}")),
    };
    let rest = rest.strip_prefix('v').unwrap_or(rest);
    let (core, suffix) = match rest.find(['-', '+']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let is_x = |p: &str| matches!(p, "x" | "X" | "*");
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return Err(format!("improper constraint: {whole}"));
    }
    let any = is_x(parts[0]);
    let minor_dirty = any || parts.len() < 2 || is_x(parts[1]);
    let patch_dirty = minor_dirty || parts.len() < 3 || is_x(parts[2]);
    let nums: Vec<&str> = parts
        .iter()
        .map(|p| if is_x(p) { "0" } else { p })
        .collect();
    let mut text = nums.join(".");
    for _ in nums.len()..3 {
        text.push_str(".0");
    }
    let version = Version::parse(&format!("{text}{suffix}"))
        .map_err(|_| format!("improper constraint: {whole}"))?;
    Ok(Comparison {
        op,
        version,
        dirty: minor_dirty || patch_dirty,
        minor_dirty,
        patch_dirty,
        any,
    })
}

impl Comparison {
    fn check(&self, v: &Version) -> bool {
        let c = &self.version;
        let prerelease_blocked = !v.prerelease.is_empty() && c.prerelease.is_empty();
        if self.any {
            return !prerelease_blocked || self.op == Op::Ne;
        }
        let ord = v.compare(c);
        match self.op {
            Op::Eq => {
                if prerelease_blocked {
                    false
                } else if self.dirty {
                    self.tilde(v)
                } else {
                    ord == Ordering::Equal
                }
            }
            Op::Ne => {
                if self.dirty {
                    if prerelease_blocked {
                        return false;
                    }
                    if c.major != v.major {
                        return true;
                    }
                    if self.minor_dirty {
                        return false;
                    }
                    if c.minor != v.minor {
                        return true;
                    }
                    if self.patch_dirty {
                        return false;
                    }
                }
                ord != Ordering::Equal
            }
            Op::Gt => {
                if prerelease_blocked {
                    return false;
                }
                if !self.dirty {
                    return ord == Ordering::Greater;
                }
                if v.major != c.major {
                    return v.major > c.major;
                }
                if self.minor_dirty {
                    return false;
                }
                if self.patch_dirty {
                    return v.minor > c.minor;
                }
                ord == Ordering::Greater
            }
            Op::Ge => !prerelease_blocked && ord != Ordering::Less,
            Op::Lt => !prerelease_blocked && ord == Ordering::Less,
            Op::Le => {
                if prerelease_blocked {
                    return false;
                }
                if !self.dirty {
                    return ord != Ordering::Greater;
                }
                if v.major > c.major {
                    return false;
                }
                !(v.major == c.major && v.minor > c.minor && !self.minor_dirty)
            }
            Op::Tilde => !prerelease_blocked && self.tilde(v),
            Op::Caret => !prerelease_blocked && self.caret(v),
        }
    }

    fn tilde(&self, v: &Version) -> bool {
        let c = &self.version;
        if v.compare(c) == Ordering::Less {
            return false;
        }
        if c.major == 0 && c.minor == 0 && c.patch == 0 && !self.minor_dirty && !self.patch_dirty {
            return true;
        }
        if v.major != c.major {
            return false;
        }
        v.minor == c.minor || self.minor_dirty
    }

    fn caret(&self, v: &Version) -> bool {
        let c = &self.version;
        if v.compare(c) == Ordering::Less {
            return false;
        }
        if c.major > 0 || self.minor_dirty {
            return v.major == c.major;
        }
        if v.major > 0 {
            return false;
        }
        if c.minor > 0 || self.patch_dirty {
            return v.minor == c.minor;
        }
        if v.minor > 0 {
            return false;
        }
        c.patch == v.patch
    }
}

/// Sprig's `semverCompare constraint version`.
pub fn semver_compare(constraint: &str, version: &str) -> Result<bool, String> {
    let c = Constraint::parse(constraint)?;
    let v = Version::parse(version)?;
    Ok(c.check(&v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(constraint: &str, version: &str) -> bool {
        semver_compare(constraint, version).unwrap()
    }

    #[test]
    fn kubernetes_version_checks() {
        assert!(check(">=1.21-0", "v1.35.0"));
        assert!(check(">=1.21-0", "v1.21.3-gke.100"));
        assert!(!check(">=1.21", "v1.21.3-gke.100"));
        assert!(check("<1.25.0-0", "v1.24.9"));
        assert!(!check("<1.25.0-0", "v1.35.0"));
        assert!(check(">=1.4-0, <1.30-0", "1.29.1"));
        assert!(check("<1.19 || >=1.30", "1.35.0"));
        assert!(check(">= 1.19-0", "1.35.0"));
    }

    #[test]
    fn ranges_and_wildcards() {
        assert!(check("2.x.x", "2.31.4"));
        assert!(!check("2.x.x", "3.0.0"));
        assert!(check("0.12.*", "0.12.8"));
        assert!(!check("0.12.*", "0.13.0"));
        assert!(check("^1.2.3", "1.9.0"));
        assert!(!check("^1.2.3", "2.0.0"));
        assert!(check("^0.2.3", "0.2.9"));
        assert!(!check("^0.2.3", "0.3.0"));
        assert!(check("~1.2.3", "1.2.9"));
        assert!(!check("~1.2.3", "1.3.0"));
        assert!(check("*", "1.2.3"));
        assert!(check("1.2 - 1.4.5", "1.3.0"));
        assert!(check("!=1.2.3", "1.2.4"));
        assert!(check(">1.2", "1.3.0"));
        assert!(!check(">1.2", "1.2.5"));
        assert!(check("8.4.0", "8.4.0"));
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(semver_compare(">=1.2", "not-a-version").is_err());
        assert!(semver_compare(">>1.2", "1.2.3").is_err());
    }
}
