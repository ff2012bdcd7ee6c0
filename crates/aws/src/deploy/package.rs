//! The function's code: a zip holding one executable named `bootstrap`,
//! the running `lamed` when it is a Linux build for the target
//! architecture, else the file given with `--bootstrap`.
//!
//! The executable is stripped of its debug info (a release build with
//! `debug = 1` is mostly debug info: 106 MB, 18 MB without), and the result
//! is checked against AWS Lambda's size limits before anything is sent:
//! AWS's emulator enforces neither limit, AWS does.

use std::borrow::Cow;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use zip::write::SimpleFileOptions;

use crate::args::Arch;

/// How to get a Linux executable for an architecture.
pub fn build_hint(arch: Arch) -> String {
    let flag = match arch {
        Arch::X86_64 => "--x86-64",
        Arch::Arm64 => "--arm64",
    };
    format!(
        "build one with `cargo lambda build --release {flag}` (or `cargo build --release --target {}-unknown-linux-musl`) \
         and pass --bootstrap target/lambda/lamed/bootstrap",
        match arch {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "aarch64",
        }
    )
}

/// One MiB: AWS's "MB" in Lambda's limits (see the numbers in its refusals).
const MIB: u64 = 1024 * 1024;

/// AWS Lambda's limit on the code zip uploaded directly (`ZipFile` of
/// CreateFunction and UpdateFunctionCode): 50 MB. Above it AWS wants the zip
/// in S3, which lamed does not do.
pub const MAX_ZIPPED_BYTES: u64 = 50 * MIB;

/// AWS Lambda's limit on the function's code unzipped: 250 MB ("Unzipped
/// size must be smaller than 262144000 bytes").
pub const MAX_UNZIPPED_BYTES: u64 = 250 * MIB;

/// How to build a bootstrap within the limits; the variables work with
/// every build command of [`build_hint`] too.
const SMALLER_BUILD_HINT: &str = "build it without debug info and symbols: \
     `CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=symbols cargo build --release --features aws`, \
     then pass --bootstrap target/release/lamed";

/// The function's code, ready to upload.
#[derive(Debug)]
pub struct Package {
    /// The zip holding `bootstrap`.
    pub zip: Vec<u8>,
    /// The size of the executable as found.
    pub original_bytes: u64,
    /// The size of `bootstrap` in the zip, without debug info.
    pub unzipped_bytes: u64,
}

impl Package {
    /// The sizes and the limits, for one line of output.
    pub fn summary(&self) -> String {
        let unzipped = if self.unzipped_bytes < self.original_bytes {
            format!(
                "{} MB, {} MB without debug info",
                mb(self.original_bytes),
                mb(self.unzipped_bytes)
            )
        } else {
            format!("{} MB", mb(self.unzipped_bytes))
        };
        format!(
            "{unzipped}, {} MB zipped (AWS Lambda limits: {} MB unzipped, {} MB zipped)",
            mb(self.zip.len() as u64),
            mb(MAX_UNZIPPED_BYTES),
            mb(MAX_ZIPPED_BYTES)
        )
    }
}

/// Bytes in AWS's MB, one decimal, rounded up: a size over a limit never
/// shows as the limit.
fn mb(bytes: u64) -> String {
    let tenths = (bytes * 10).div_ceil(MIB);
    if tenths.is_multiple_of(10) {
        format!("{}", tenths / 10)
    } else {
        format!("{}.{}", tenths / 10, tenths % 10)
    }
}

/// Reads `executable`, strips its debug info and zips it as `bootstrap`,
/// refusing what AWS Lambda would refuse. The unzipped size is checked
/// before zipping, so a far too large file is refused at once.
///
/// # Errors
///
/// When the file cannot be read or is not an ELF file object can rewrite,
/// or the result is above [`MAX_UNZIPPED_BYTES`] or [`MAX_ZIPPED_BYTES`],
/// naming the limit and how to build a smaller bootstrap.
pub fn package(executable: &Path) -> anyhow::Result<Package> {
    let original = std::fs::read(executable)
        .with_context(|| format!("cannot read bootstrap {}", executable.display()))?;
    let stripped = strip_debug_info(&original)
        .with_context(|| format!("cannot strip bootstrap {}", executable.display()))?;
    let unzipped_bytes = stripped.len() as u64;
    Limit::Unzipped.check(executable, unzipped_bytes)?;
    let zip = zip_bytes(&stripped)?;
    Limit::Zipped.check(executable, zip.len() as u64)?;
    Ok(Package {
        zip,
        original_bytes: original.len() as u64,
        unzipped_bytes,
    })
}

/// One of AWS Lambda's size limits.
#[derive(Clone, Copy, Debug)]
enum Limit {
    /// [`MAX_UNZIPPED_BYTES`], checked on the stripped executable.
    Unzipped,
    /// [`MAX_ZIPPED_BYTES`].
    Zipped,
}

impl Limit {
    /// Refuses `bytes` above the limit, naming it and how to build smaller.
    fn check(self, executable: &Path, bytes: u64) -> anyhow::Result<()> {
        let (limit, size, of) = match self {
            Limit::Unzipped => (MAX_UNZIPPED_BYTES, "without debug info", "unzipped"),
            Limit::Zipped => (
                MAX_ZIPPED_BYTES,
                "zipped",
                "zipped in a direct upload (lamed does not upload through S3)",
            ),
        };
        if bytes <= limit {
            return Ok(());
        }
        anyhow::bail!(
            "bootstrap {} is {} MB {size}, above AWS Lambda's limit of {} MB {of}\n  fix: {SMALLER_BUILD_HINT}",
            executable.display(),
            mb(bytes),
            mb(limit)
        )
    }
}

/// Whether a section is debug info that `strip --strip-debug` removes:
/// DWARF (`.debug_*`, compressed `.zdebug_*`), never loaded at run time
/// (Rust's `.debug_gdb_scripts` is loaded, and stays).
fn is_debug_info(flags: object::elf::SectionFlags, name: &[u8]) -> bool {
    !flags.contains(object::elf::SHF_ALLOC)
        && (name.starts_with(b".debug") || name.starts_with(b".zdebug"))
}

/// Whether `elf` (64-bit, as Lambda runs) has debug info, read without
/// rewriting anything.
fn has_debug_info(elf: &[u8]) -> object::read::Result<bool> {
    use object::read::elf::{FileHeader, SectionHeader};
    let header = object::elf::FileHeader64::<object::Endianness>::parse(elf)?;
    let endian = header.endian()?;
    let sections = header.sections(endian, elf)?;
    Ok(sections.iter().any(|section| {
        sections
            .section_name(endian, section)
            .is_ok_and(|name| is_debug_info(section.sh_flags(endian), name))
    }))
}

/// `elf` without its debug info, like `strip --strip-debug`: the symbol
/// table stays, so a panic's backtrace still names functions. An
/// executable without debug info is returned as it is, not rewritten.
///
/// # Errors
///
/// When object cannot read or write the ELF file.
pub fn strip_debug_info(elf: &[u8]) -> anyhow::Result<Cow<'_, [u8]>> {
    if !has_debug_info(elf).map_err(|err| anyhow::anyhow!("not a 64-bit ELF file: {err}"))? {
        return Ok(Cow::Borrowed(elf));
    }
    let mut builder = object::build::elf::Builder::read(elf)
        .map_err(|err| anyhow::anyhow!("cannot read the ELF file: {err}"))?;
    for section in builder.sections.iter_mut() {
        section.delete = is_debug_info(section.sh_flags, &section.name);
    }
    let mut stripped = Vec::new();
    builder
        .write(&mut stripped)
        .map_err(|err| anyhow::anyhow!("cannot rewrite the ELF file: {err}"))?;
    Ok(Cow::Owned(stripped))
}

/// The ELF machine number of an architecture.
fn elf_machine(arch: Arch) -> u16 {
    match arch {
        Arch::X86_64 => 0x3e,
        Arch::Arm64 => 0xb7,
    }
}

/// Checks that `bytes` start like a 64-bit little-endian Linux executable
/// for `arch`.
///
/// # Errors
///
/// What it is instead.
pub fn check_elf(bytes: &[u8], arch: Arch) -> anyhow::Result<()> {
    if bytes.len() < 20 || &bytes[..4] != b"\x7fELF" {
        anyhow::bail!("not a Linux executable (no ELF header)");
    }
    if bytes[4] != 2 || bytes[5] != 1 {
        anyhow::bail!("not a 64-bit little-endian executable");
    }
    let machine = u16::from_le_bytes([bytes[18], bytes[19]]);
    if machine != elf_machine(arch) {
        let found = match machine {
            0x3e => "x86_64",
            0xb7 => "arm64",
            _ => "another architecture",
        };
        anyhow::bail!("built for {found}, not {}", arch.lambda_name());
    }
    Ok(())
}

/// The executable to upload: `explicit` when given, else this `lamed` when
/// it is a Linux build for `arch`.
///
/// # Errors
///
/// When no suitable executable is available, with how to build one.
pub fn choose_bootstrap(explicit: Option<&Path>, arch: Arch) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        let head =
            read_head(path).with_context(|| format!("cannot read bootstrap {}", path.display()))?;
        check_elf(&head, arch).with_context(|| {
            format!(
                "bootstrap {} cannot run on Lambda {}; {}",
                path.display(),
                arch.lambda_name(),
                build_hint(arch)
            )
        })?;
        return Ok(path.to_owned());
    }
    if cfg!(target_os = "linux") && Arch::host() == Some(arch) {
        return std::env::current_exe().context("cannot find the running lamed executable");
    }
    anyhow::bail!(
        "this lamed is not a Linux {} build; {}",
        arch.lambda_name(),
        build_hint(arch)
    )
}

fn read_head(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut head = Vec::with_capacity(64);
    std::fs::File::open(path)?.take(64).read_to_end(&mut head)?;
    Ok(head)
}

/// A zip holding `bytes` as `bootstrap`, mode 0755. Its timestamp is
/// fixed, so the same executable gives the same zip (and `CodeSha256`).
///
/// # Errors
///
/// Only on a zip library failure.
pub fn zip_bytes(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o755)
        .last_modified_time(zip::DateTime::default())
        .large_file(false);
    writer
        .start_file("bootstrap", options)
        .context("cannot start the zip entry")?;
    writer
        .write_all(bytes)
        .context("cannot zip the bootstrap")?;
    let cursor = writer.finish().context("cannot finish the zip")?;
    Ok(cursor.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 64-bit little-endian ELF header for `machine`, with no sections.
    fn elf(machine: u16) -> Vec<u8> {
        let mut bytes = vec![0u8; 64];
        bytes[..4].copy_from_slice(b"\x7fELF");
        bytes[4] = 2;
        bytes[5] = 1;
        bytes[6] = 1;
        bytes[18..20].copy_from_slice(&machine.to_le_bytes());
        bytes[20] = 1;
        bytes[52] = 64;
        bytes
    }

    /// The names of `elf`'s sections.
    fn section_names(elf: &[u8]) -> Vec<String> {
        object::build::elf::Builder::read(elf)
            .unwrap()
            .sections
            .iter()
            .map(|section| String::from_utf8_lossy(&section.name).into_owned())
            .collect()
    }

    /// A real executable with debug info, from rustc `-g`, in `dir`.
    fn debug_executable(dir: &Path) -> PathBuf {
        let source = dir.join("hello.rs");
        std::fs::write(
            &source,
            r#"fn main() { println!("hello from {}", module_path!()); }"#,
        )
        .unwrap();
        let path = dir.join("hello");
        let status = std::process::Command::new(std::env::var("RUSTC").unwrap_or("rustc".into()))
            .args(["-g", "-o"])
            .arg(&path)
            .arg(&source)
            .status()
            .expect("run rustc");
        assert!(status.success());
        path
    }

    /// Stripping removes the DWARF sections and keeps the symbol table, and
    /// the result still runs.
    #[cfg(target_os = "linux")]
    #[test]
    fn stripped_executable_runs_without_debug_info() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let original = std::fs::read(debug_executable(dir.path())).unwrap();
        assert!(section_names(&original).contains(&".debug_info".to_owned()));
        let stripped = strip_debug_info(&original).unwrap();
        assert!(stripped.len() < original.len());
        let names = section_names(&stripped);
        assert!(
            !names.iter().any(|name| name.starts_with(".debug_info")),
            "{names:?}"
        );
        assert!(!has_debug_info(&stripped).unwrap(), "{names:?}");
        assert!(names.contains(&".symtab".to_owned()), "{names:?}");
        assert!(names.contains(&".text".to_owned()), "{names:?}");
        let path = dir.path().join("stripped");
        std::fs::write(&path, &stripped).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let output = std::process::Command::new(&path).output().unwrap();
        assert!(output.status.success(), "{output:?}");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "hello from hello\n"
        );
        // Stripping again finds nothing and leaves the bytes as they are.
        assert!(matches!(
            strip_debug_info(&stripped).unwrap(),
            Cow::Borrowed(_)
        ));
    }

    /// An executable without debug info is zipped byte for byte.
    #[test]
    fn package_without_debug_info_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bootstrap");
        let mut bytes = elf(0x3e);
        bytes.extend((0..10_000u32).flat_map(u32::to_le_bytes));
        std::fs::write(&path, &bytes).unwrap();
        let package = package(&path).unwrap();
        assert_eq!(package.original_bytes, bytes.len() as u64);
        assert_eq!(package.unzipped_bytes, bytes.len() as u64);
        let mut archive = zip::ZipArchive::new(Cursor::new(&package.zip)).unwrap();
        let mut unzipped = Vec::new();
        std::io::Read::read_to_end(&mut archive.by_name("bootstrap").unwrap(), &mut unzipped)
            .unwrap();
        assert_eq!(unzipped, bytes);
    }

    /// Each limit lets its own size through, refuses one byte more, and
    /// the refusal names the limit and how to build smaller.
    #[test]
    fn limits_refuse_one_byte_over() {
        let path = Path::new("target/lamed");
        for (limit, bytes, over, named) in [
            (
                Limit::Unzipped,
                MAX_UNZIPPED_BYTES,
                "bootstrap target/lamed is 250.1 MB without debug info",
                "limit of 250 MB unzipped",
            ),
            (
                Limit::Zipped,
                MAX_ZIPPED_BYTES,
                "bootstrap target/lamed is 50.1 MB zipped",
                "limit of 50 MB zipped in a direct upload",
            ),
        ] {
            limit.check(path, bytes).unwrap();
            let err = limit.check(path, bytes + 1).unwrap_err().to_string();
            assert!(err.contains(over), "{err}");
            assert!(err.contains(named), "{err}");
            assert!(err.contains("CARGO_PROFILE_RELEASE_STRIP=symbols"), "{err}");
        }
    }

    /// A file over the unzipped limit (sparse: no disk used) is refused,
    /// naming the limit; it is not zipped first.
    #[test]
    fn package_refuses_over_the_unzipped_limit_without_zipping() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bootstrap");
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(MAX_UNZIPPED_BYTES + 1).unwrap();
        drop(file);
        let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all(&elf(0x3e)).unwrap();
        drop(file);
        let err = package(&path).unwrap_err().to_string();
        assert!(err.contains("limit of 250 MB unzipped"), "{err}");
    }

    /// ELF headers are told apart by machine; other files are refused.
    #[test]
    fn elf_check() {
        assert!(check_elf(&elf(0x3e), Arch::X86_64).is_ok());
        assert!(check_elf(&elf(0xb7), Arch::Arm64).is_ok());
        let err = check_elf(&elf(0x3e), Arch::Arm64).unwrap_err();
        assert!(err.to_string().contains("x86_64"), "{err}");
        assert!(check_elf(b"#!/bin/sh\n", Arch::X86_64).is_err());
    }

    /// On a Linux host the running binary is chosen for its own
    /// architecture; a wrong --bootstrap is refused with how to build one.
    #[test]
    fn bootstrap_choice() {
        if let (true, Some(host)) = (cfg!(target_os = "linux"), Arch::host()) {
            assert_eq!(
                choose_bootstrap(None, host).unwrap(),
                std::env::current_exe().unwrap()
            );
            let other = if host == Arch::X86_64 {
                Arch::Arm64
            } else {
                Arch::X86_64
            };
            let err = format!("{:#}", choose_bootstrap(None, other).unwrap_err());
            assert!(err.contains("cargo lambda build"), "{err}");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bootstrap");
        std::fs::write(&path, elf(0xb7)).unwrap();
        assert!(choose_bootstrap(Some(&path), Arch::Arm64).is_ok());
        assert!(choose_bootstrap(Some(&path), Arch::X86_64).is_err());
    }

    /// The zip holds one executable entry named bootstrap.
    #[test]
    fn zip_holds_bootstrap() {
        let zipped = zip_bytes(b"hello").unwrap();
        let mut archive = zip::ZipArchive::new(Cursor::new(zipped)).unwrap();
        assert_eq!(archive.len(), 1);
        let entry = archive.by_index(0).unwrap();
        assert_eq!(entry.name().unwrap(), "bootstrap");
        assert_eq!(entry.unix_mode().unwrap() & 0o777, 0o755);
    }
}
