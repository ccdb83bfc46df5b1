//! mechfund's server side: the `mechfund` command line and the HTTP server over a SQLite event
//! store, built on `mechfund-core`. `main.rs` only parses the arguments and calls [`cli::run`].
//!
//! - [`cli`]: the subcommands (`replay`, `whatif`, `verify`, `rules`, `import`, `export`,
//!   `backup`, `restore`; `serve` is [`serve`]), one reader of `--rules`, the exit codes;
//! - [`store`]: the event store: schema, hash chain, snapshots, recovery, import, backup and
//!   restore, verification;
//! - [`serve`]: the server: app state, extractors, read and write handlers, the writer, the
//!   event streams' fan-out, files, connections;
//! - [`ddc`]: a DockerDiscordControl installation on disk (`--ddc DIR`);
//! - [`pipeline`]: replay on every core, for the CLI's files and the store's mechs.
//!
//! Modules never import each other in circles (`cargo xtask layout` shows the graph; `cargo
//! xtask test` fails on a cycle).

pub mod cli;
pub mod ddc;
pub mod pipeline;
pub mod serve;
pub mod store;
