//! The function's code: a zip holding one executable named `bootstrap`,
//! the running `lamed` when it is a Linux build for the target
//! architecture, else the file given with `--bootstrap`.

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

/// A zip holding `executable` as `bootstrap`, mode 0755.
///
/// # Errors
///
/// When the file cannot be read.
pub fn zip_bootstrap(executable: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(executable)
        .with_context(|| format!("cannot read bootstrap {}", executable.display()))?;
    zip_bytes(&bytes)
}

/// A zip holding `bytes` as `bootstrap`, mode 0755.
///
/// # Errors
///
/// Only on a zip library failure.
pub fn zip_bytes(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o755)
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

    fn elf(machine: u16) -> Vec<u8> {
        let mut bytes = vec![0u8; 64];
        bytes[..4].copy_from_slice(b"\x7fELF");
        bytes[4] = 2;
        bytes[5] = 1;
        bytes[18..20].copy_from_slice(&machine.to_le_bytes());
        bytes
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
