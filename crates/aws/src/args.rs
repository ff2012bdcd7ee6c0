//! The options of `lamed preflight`, `deploy` and `destroy`, as clap
//! arguments: the binary's command line embeds them, so the commands take
//! their own options and never the binary's types.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// The processor architecture of the Lambda functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Arch {
    /// Intel/AMD 64-bit
    #[value(name = "x86_64")]
    X86_64,
    /// Graviton (ARM 64-bit): cheaper per GB-second
    #[value(name = "arm64")]
    Arm64,
}

impl Arch {
    /// The name Lambda uses.
    pub fn lambda_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }

    /// The architecture of this running binary, if Lambda has it.
    pub fn host() -> Option<Arch> {
        match std::env::consts::ARCH {
            "x86_64" => Some(Arch::X86_64),
            "aarch64" => Some(Arch::Arm64),
            _ => None,
        }
    }
}

/// Where AWS is and what to check or build; shared by preflight, deploy
/// and destroy.
#[derive(Debug, Clone, Args)]
pub struct AwsArgs {
    /// Config file to read instead of ./config.json or ~/.lamed/config.json
    #[arg(long, env = "LAMED_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// AWS region [default: from AWS_REGION or the AWS profile]
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,

    /// Send AWS API calls to this URL (an emulator such as moto)
    #[arg(long, env = "AWS_ENDPOINT_URL", value_name = "URL")]
    pub endpoint_url: Option<String>,

    /// Processor architecture of the functions
    #[arg(long, value_enum, default_value_t = Arch::X86_64)]
    pub arch: Arch,

    /// The Linux executable to upload as the function's bootstrap
    /// [default: this lamed, when it is a Linux build for --arch]
    ///
    /// Build one with `cargo lambda build --release --x86-64` (or --arm64)
    /// and pass target/lambda/lamed/bootstrap. Its debug info is stripped
    /// when packaged; AWS Lambda takes at most 250 MB unzipped, 50 MB zipped.
    #[arg(long, value_name = "PATH")]
    pub bootstrap: Option<PathBuf>,
}

/// Options of `lamed deploy`.
#[derive(Debug, Clone, Args)]
pub struct DeployArgs {
    /// Skip the preflight checks
    #[arg(long)]
    pub no_preflight: bool,

    /// Where AWS is and what to build
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// Options of `lamed destroy`.
#[derive(Debug, Clone, Args)]
pub struct DestroyArgs {
    /// Do not ask for confirmation
    #[arg(long)]
    pub yes: bool,

    /// Also delete the DynamoDB table the functions counted in, with every
    /// count in it
    ///
    /// Without it the table stays (and costs only its storage). Asks to
    /// type the table's name, unless --yes.
    #[arg(long)]
    pub delete_data: bool,

    /// Config file naming the table, when no function is left to say it
    /// [default: ./config.json or ~/.lamed/config.json]
    #[arg(long, env = "LAMED_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// AWS region [default: from AWS_REGION or the AWS profile]
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,

    /// Send AWS API calls to this URL (an emulator such as moto)
    #[arg(long, env = "AWS_ENDPOINT_URL", value_name = "URL")]
    pub endpoint_url: Option<String>,
}
