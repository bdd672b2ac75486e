//! `COPY/ADD --chmod`: an octal mode, or BuildKit's (and chmod(1)'s) symbolic form such as
//! `u=rwX,go=rX`, where `X` is `x` for directories and for files already executable by someone.

use serde::Serialize;

use crate::encode::Encoder;

/// A parsed `--chmod` value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Chmod {
    /// `0644`: every copied entry (directories too) gets exactly this mode.
    Octal(u32),
    /// `u=rwX,go=rX`: clauses applied in order to each entry's own mode. Kept as written (it
    /// was validated by [`Chmod::parse`]).
    Symbolic(String),
}

impl Chmod {
    /// Parse a `--chmod` value: octal up to `7777`, or comma-separated clauses
    /// `[ugoa]*([-+=]([rwxXst]*|[ugo]))+`.
    pub fn parse(value: &str) -> Result<Chmod, String> {
        if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
            return u32::from_str_radix(value, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .map(Chmod::Octal)
                .ok_or_else(|| format!("`{value}` is not an octal mode (0000 to 7777)"));
        }
        // Validate by applying to both kinds of entry.
        apply_symbolic(value, 0o644, false)?;
        Ok(Chmod::Symbolic(value.to_string()))
    }

    /// The mode of an entry whose own mode is `mode` (permission bits) after this `--chmod`.
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        match self {
            Chmod::Octal(m) => *m,
            // Validated at parse time; an invalid clause would leave the mode as it is.
            Chmod::Symbolic(s) => apply_symbolic(s, mode, is_dir).unwrap_or(mode),
        }
    }

    /// Feed into a digest.
    pub fn encode(&self, e: &mut Encoder) {
        match self {
            Chmod::Octal(m) => {
                e.tag(1).u64(*m as u64);
            }
            Chmod::Symbolic(s) => {
                e.tag(2).str(s);
            }
        }
    }
}

impl std::fmt::Display for Chmod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Chmod::Octal(m) => write!(f, "{m:04o}"),
            Chmod::Symbolic(s) => f.write_str(s),
        }
    }
}

/// The bits a `who` letter governs (rwx plus its special bit).
fn who_mask(who: u8) -> u32 {
    match who {
        b'u' => 0o4700,
        b'g' => 0o2070,
        b'o' => 0o1007,
        _ => 0o7777,
    }
}

fn apply_symbolic(spec: &str, mode: u32, is_dir: bool) -> Result<u32, String> {
    let bad = |why: &str| format!("`{spec}` is not a mode: {why} (write e.g. 0644 or u=rwX,go=rX)");
    let original = mode & 0o7777;
    let mut mode = original;
    for clause in spec.split(',') {
        let bytes = clause.as_bytes();
        let mut i = 0;
        let mut mask = 0;
        while i < bytes.len() && b"ugoa".contains(&bytes[i]) {
            mask |= who_mask(bytes[i]);
            i += 1;
        }
        if mask == 0 {
            mask = 0o7777;
        }
        if i == bytes.len() {
            return Err(bad("expected `+`, `-` or `=` after who"));
        }
        while i < bytes.len() {
            let op = bytes[i];
            if !b"+-=".contains(&op) {
                return Err(bad(&format!("unexpected `{}`", bytes[i] as char)));
            }
            i += 1;
            let mut bits = 0;
            if i < bytes.len() && b"ugo".contains(&bytes[i]) {
                // Copy another class's permissions: `g=u`.
                let shift = match bytes[i] {
                    b'u' => 6,
                    b'g' => 3,
                    _ => 0,
                };
                let class = (mode >> shift) & 0o7;
                bits = class * 0o111;
                i += 1;
            } else {
                while i < bytes.len() && b"rwxXst".contains(&bytes[i]) {
                    bits |= match bytes[i] {
                        b'r' => 0o444,
                        b'w' => 0o222,
                        b'x' => 0o111,
                        b'X' if is_dir || original & 0o111 != 0 => 0o111,
                        b'X' => 0,
                        b's' => 0o6000,
                        _ => 0o1000,
                    };
                    i += 1;
                }
            }
            let bits = bits & mask;
            mode = match op {
                b'+' => mode | bits,
                b'-' => mode & !bits,
                _ => (mode & !(mask & 0o777)) | bits,
            };
        }
    }
    Ok(mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(spec: &str, mode: u32, is_dir: bool) -> u32 {
        Chmod::parse(spec).unwrap().apply(mode, is_dir)
    }

    #[test]
    fn octal_and_symbolic_modes() {
        assert_eq!(Chmod::parse("0644").unwrap(), Chmod::Octal(0o644));
        assert_eq!(Chmod::parse("755").unwrap().apply(0o600, true), 0o755);
        // BuildKit's example: directories stay traversable, plain files do not become executable.
        assert_eq!(sym("u=rwX,go=rX", 0o600, true), 0o755);
        assert_eq!(sym("u=rwX,go=rX", 0o600, false), 0o644);
        assert_eq!(
            sym("u=rwX,go=rX", 0o700, false),
            0o755,
            "already executable"
        );
        assert_eq!(sym("go-w", 0o777, false), 0o755);
        assert_eq!(sym("a+x", 0o644, false), 0o755);
        assert_eq!(sym("+x", 0o600, false), 0o711);
        assert_eq!(sym("g=u", 0o640, false), 0o660);
        assert_eq!(sym("u+s,o+t", 0o755, true), 0o5755);
        assert_eq!(sym("o=", 0o777, false), 0o770);
    }

    #[test]
    fn bad_modes_are_refused() {
        for bad in ["", "8", "17777", "u", "u=q", "z=r", "u=r,", "rw"] {
            assert!(Chmod::parse(bad).is_err(), "{bad:?}");
        }
    }
}
