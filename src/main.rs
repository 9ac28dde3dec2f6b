use std::process::ExitCode;

fn main() -> ExitCode {
    match srgraph::cli::run() {
        Ok(srgraph::cli::Outcome::Done) => ExitCode::SUCCESS,
        Ok(srgraph::cli::Outcome::Interrupted) => ExitCode::from(srgraph::cli::interrupted_exit_code()),
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `srgraph inspect m.onnx | head` is not a failure.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
