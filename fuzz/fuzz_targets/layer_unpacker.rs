//! Arbitrary bytes as a layer tar: unpack into `<tmp>/snap`, unprivileged, once recording
//! whiteouts and once applying them. Nothing may panic, and nothing outside `snap` may be
//! created, removed or chmodded: the temp dir holds only `snap`, and neither `snap` (no entry
//! names it) nor the three directories above it change mode. `scripts/fuzz.sh` runs this (as root) in a mount namespace
//! where everything but the fuzz dir and a private `/tmp` is read-only, so an escape further out
//! fails with EROFS, which counts as a finding too.
//!
//! Header checksums are recomputed before unpacking (`fix_checksums`): a mutated header would
//! almost never match its checksum, and the tar reader would stop at it. Half of the mutations
//! are libFuzzer's own; the other half (`mutate_entries`) know the tar layout and rewrite a
//! whole name, link, type or mode, or insert, drop or repeat an entry: the interesting layers
//! (`d/` then `d -> ..`, `.wh...`) differ from a seed in several bytes of one field, which byte
//! flips alone almost never hit.
#![no_main]

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::{fuzz_mutator, fuzz_target, fuzzer_mutate};
use seal_engine::unpack::{unpack, UnpackOptions};
use seal_engine::EngineError;

/// A directory of this process's own, holding one temp dir per run.
fn base() -> &'static Path {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let base = tempfile::Builder::new()
            .prefix("seal-fuzz-unpack-")
            .tempdir()
            .expect("a base temp dir")
            .keep();
        fs::set_permissions(&base, fs::Permissions::from_mode(0o715)).expect("chmod");
        base
    })
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{} is gone: {e}", path.display()))
        .permissions()
        .mode()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{} is gone: {e}", dir.display()))
        .map(|entry| {
            entry
                .expect("a dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

fuzz_target!(|data: &[u8]| {
    let data = &fix_checksums(data)[..];
    let base = base();
    let above = base.parent().expect("the base has a parent");
    for apply_whiteouts in [false, true] {
        let dir = tempfile::tempdir_in(base).expect("a temp dir");
        let dest = dir.path().join("snap");
        fs::create_dir(&dest).expect("creating snap/");
        // Modes no layer is likely to set, so a chmod that escapes shows.
        for (path, mode) in [(&dest, 0o751), (&dir.path().to_path_buf(), 0o753)] {
            fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
        }
        let modes = [mode(&dest), mode(dir.path()), mode(base), mode(above)];
        let options = UnpackOptions {
            privileged: false,
            apply_whiteouts,
        };
        let result = unpack(data, &dest, &options);
        let context = format!("unpack (apply_whiteouts: {apply_whiteouts})");
        if let Err(EngineError::Io { source, path, .. }) = &result {
            assert_ne!(
                source.kind(),
                io::ErrorKind::ReadOnlyFilesystem,
                "{context} wrote outside its destination: {}",
                path.display()
            );
        }
        assert_eq!(
            names(dir.path()),
            ["snap"],
            "{context} touched the temp dir"
        );
        let dir_name = dir
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert_eq!(names(base), [dir_name], "{context} touched the base dir");
        assert_eq!(
            [mode(&dest), mode(dir.path()), mode(base), mode(above)],
            modes,
            "{context} changed the mode of its destination or a directory above it"
        );
        // A read-only directory in the layer must not keep the temp dir from being removed.
        make_writable(&dest);
        dir.close().expect("removing the temp dir");
    }
});

fn make_writable(dir: &Path) {
    let Ok(meta) = fs::symlink_metadata(dir) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    if let Ok(children) = fs::read_dir(dir) {
        for child in children.flatten() {
            make_writable(&child.path());
        }
    }
}

/// `data` with the checksum of every header the tar reader will meet recomputed: headers are
/// found as the reader finds them (512-byte blocks, each followed by its padded data; a pax
/// `size=` record overrides the next entry's size).
fn fix_checksums(data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    let mut at = 0usize;
    let mut pax_size = None;
    while out.len().saturating_sub(at) >= 512 {
        let header = &mut out[at..at + 512];
        if header.iter().all(|&b| b == 0) {
            at += 512;
            continue;
        }
        let sum: u32 = header
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    u32::from(b' ')
                } else {
                    u32::from(b)
                }
            })
            .sum();
        header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let kind = header[156];
        let size = pax_size
            .take()
            .unwrap_or_else(|| header_size(&header[124..136]));
        let body = at + 512;
        let Some(next) = usize::try_from(size)
            .ok()
            .and_then(|s| s.checked_add(511))
            .and_then(|s| body.checked_add(s & !511))
        else {
            break;
        };
        if kind == b'x' {
            pax_size = pax_size_record(&out[body.min(out.len())..next.min(out.len())]);
        }
        at = next;
    }
    out
}

/// The tar size field: octal text, or big-endian binary when the high bit is set.
fn header_size(field: &[u8]) -> u64 {
    if field[0] & 0x80 != 0 {
        return field[4..]
            .iter()
            .fold(0u64, |n, &b| n.wrapping_shl(8) | u64::from(b));
    }
    let text = String::from_utf8_lossy(field);
    u64::from_str_radix(text.trim_matches(|c: char| c == ' ' || c == '\0'), 8).unwrap_or(0)
}

/// The `size=` record of a pax extended header.
fn pax_size_record(body: &[u8]) -> Option<u64> {
    String::from_utf8_lossy(body)
        .lines()
        .find_map(|line| {
            line.split_once(" size=")
                .map(|(_, v)| v.trim().parse().ok())
        })
        .flatten()
}

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    let mut rng = Rng(u64::from(seed) | 1 << 32);
    if rng.below(2) == 0 {
        return fuzzer_mutate(data, size, max_size);
    }
    let mutated = mutate_entries(&data[..size], &mut rng);
    if mutated.len() > max_size {
        return fuzzer_mutate(data, size, max_size);
    }
    data[..mutated.len()].copy_from_slice(&mutated);
    mutated.len()
});

/// xorshift64*: deterministic for a given libFuzzer seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n.max(1)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A path made of names that matter to the unpacker.
    fn path(&mut self) -> Vec<u8> {
        const NAMES: [&str; 14] = [
            "d",
            "f",
            "l",
            "a",
            ".",
            "..",
            "snap",
            ".wh.d",
            ".wh.f",
            ".wh..wh..opq",
            ".wh.",
            ".wh..",
            ".wh...",
            "",
        ];
        let mut path = String::new();
        if self.below(8) == 0 {
            path.push('/');
        }
        for i in 0..1 + self.below(3) {
            if i > 0 {
                path.push('/');
            }
            let name = *self.pick(&NAMES[..]);
            path.push_str(name);
        }
        if self.below(4) == 0 {
            path.push('/');
        }
        path.into_bytes()
    }
}

/// The entries of a tar as byte ranges (header and padded data), as the reader walks them.
fn entries(data: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let mut at = 0usize;
    while data.len().saturating_sub(at) >= 512 && data[at..at + 512].iter().any(|&b| b != 0) {
        let size = header_size(&data[at + 124..at + 136]);
        let Some(next) = usize::try_from(size)
            .ok()
            .and_then(|s| s.checked_add(511))
            .and_then(|s| (at + 512).checked_add(s & !511))
        else {
            break;
        };
        ranges.push(at..next.min(data.len()));
        at = next;
    }
    ranges
}

fn set_field(header: &mut [u8], field: std::ops::Range<usize>, value: &[u8]) {
    let field = &mut header[field];
    field.fill(0);
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

/// A new ustar header (checksum left to `fix_checksums`).
fn new_header(rng: &mut Rng) -> Vec<u8> {
    let mut header = vec![0u8; 512];
    set_field(&mut header, 0..100, &rng.path());
    set_field(&mut header, 100..108, b"0000755");
    set_field(&mut header, 108..116, b"0000000");
    set_field(&mut header, 116..124, b"0000000");
    set_field(&mut header, 124..136, b"00000000000");
    set_field(&mut header, 136..148, b"00000000000");
    header[156] = *rng.pick(b"0125");
    set_field(&mut header, 157..257, &rng.path());
    set_field(&mut header, 257..265, b"ustar\x0000");
    header
}

/// One tar-aware change to `data`.
fn mutate_entries(data: &[u8], rng: &mut Rng) -> Vec<u8> {
    let ranges = entries(data);
    let mut out = data.to_vec();
    let boundary = |rng: &mut Rng| {
        ranges
            .get(rng.below(ranges.len() + 1))
            .map_or(ranges.last().map_or(0, |r| r.end), |r| r.start)
    };
    if ranges.is_empty() {
        out.splice(0..0, new_header(rng));
        return out;
    }
    let entry = rng.pick(&ranges).clone();
    let header = &mut out[entry.start..entry.start + 512];
    match rng.below(7) {
        0 => set_field(header, 0..100, &rng.path()),
        1 => set_field(header, 157..257, &rng.path()),
        2 => header[156] = *rng.pick(b"0123456xLKg\0"),
        3 => {
            const MODES: [&[u8]; 6] = [
                b"0000755", b"0000700", b"0000000", b"0000644", b"0004755", b"0000751",
            ];
            let mode = *rng.pick(&MODES[..]);
            set_field(header, 100..108, mode)
        }
        4 => {
            let at = boundary(rng);
            out.splice(at..at, new_header(rng));
        }
        5 => {
            out.drain(entry);
        }
        _ => {
            let copy = out[entry].to_vec();
            let at = boundary(rng);
            out.splice(at..at, copy);
        }
    }
    out
}
