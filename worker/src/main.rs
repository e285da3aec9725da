//! The `userfeed` binary: see `userfeed --help`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match userfeed::cli::run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // A reader that went away (`userfeed uploads list | head`) ends the
        // command quietly, as it ends any Unix tool.
        Err(e) if userfeed::cli::is_broken_pipe(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
