//! The `userfeed` binary: see `userfeed --help`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match userfeed::cli::run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
