//! Glob matching as Helm does it: Go's `filepath.Match` for `.helmignore` (`*` and `?` stop at
//! `/`, `[...]` classes, `\` escapes), plus `**` across directories for `.Files.Glob`.

/// Does `name` match `pattern`? A malformed pattern matches nothing.
pub fn go_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    matches(&p, &n)
}

fn matches(p: &[char], n: &[char]) -> bool {
    let Some((&first, rest)) = p.split_first() else {
        return n.is_empty();
    };
    match first {
        '*' => {
            if rest.first() == Some(&'*') {
                // `**`: any run of characters, `/` included.
                let rest = &rest[1..];
                // `**/x` also matches `x` at the top.
                if rest.first() == Some(&'/') && matches(&rest[1..], n) {
                    return true;
                }
                return (0..=n.len()).any(|i| matches(rest, &n[i..]));
            }
            (0..=n.len())
                .take_while(|&i| i == 0 || n[i - 1] != '/')
                .any(|i| matches(rest, &n[i..]))
        }
        '?' => match n.split_first() {
            Some((&c, n_rest)) if c != '/' => matches(rest, n_rest),
            _ => false,
        },
        '[' => {
            let Some((&c, n_rest)) = n.split_first() else {
                return false;
            };
            let Some((ok, after)) = class(rest, c) else {
                return false;
            };
            ok && c != '/' && matches(after, n_rest)
        }
        '\\' => match (rest.split_first(), n.split_first()) {
            (Some((&e, p_rest)), Some((&c, n_rest))) => e == c && matches(p_rest, n_rest),
            _ => false,
        },
        c => match n.split_first() {
            Some((&d, n_rest)) => c == d && matches(rest, n_rest),
            None => false,
        },
    }
}

/// Match `c` against a class body (after `[`); returns (matched, pattern after `]`).
fn class(p: &[char], c: char) -> Option<(bool, &[char])> {
    let (negate, mut p) = match p.first() {
        Some('^') | Some('!') => (true, &p[1..]),
        _ => (false, p),
    };
    let mut matched = false;
    let mut first = true;
    loop {
        let (&lo, rest) = p.split_first()?;
        if lo == ']' && !first {
            return Some((matched != negate, rest));
        }
        first = false;
        let (lo, rest) = if lo == '\\' {
            let (&e, r) = rest.split_first()?;
            (e, r)
        } else {
            (lo, rest)
        };
        if rest.first() == Some(&'-') && rest.get(1).is_some_and(|&h| h != ']') {
            let hi = rest[1];
            if lo <= c && c <= hi {
                matched = true;
            }
            p = &rest[2..];
        } else {
            if lo == c {
                matched = true;
            }
            p = rest;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_filepath_match() {
        assert!(go_match("*.yaml", "a.yaml"));
        assert!(!go_match("*.yaml", "dir/a.yaml"));
        assert!(go_match("dir/*.yaml", "dir/a.yaml"));
        assert!(go_match("a?c", "abc"));
        assert!(go_match("[a-c]x", "bx"));
        assert!(!go_match("[!a-c]x", "bx"));
        assert!(go_match(".?*", ".git"));
        assert!(!go_match(".?*", "."));
        assert!(go_match("templates/.?*", "templates/.x"));
    }

    #[test]
    fn double_star() {
        assert!(go_match("**.yaml", "a/b/c.yaml"));
        assert!(go_match("files/**", "files/a/b"));
        assert!(go_match("**/x.json", "x.json"));
        assert!(go_match("**/x.json", "a/b/x.json"));
    }
}
