//! `cargo xtask <command>`: the project's developer commands, the same ones the README and CI
//! call. Each command is one module with a `run(Args)`; adding one is adding a row to
//! [`COMMANDS`].
//!
//! It is not a build system: it only calls cargo, the built binaries and a few standard tools.

mod args;
mod bench;
mod bench_follow;
mod bench_server;
mod dashboard;
mod docs;
mod gen_log;
mod group;
mod layout;
mod schemathesis;
mod test;
mod tools;
mod wasm;
mod workspace;

use std::process::ExitCode;

use crate::args::Args;

/// A subcommand: its name, a one-line summary, its usage, and what runs it.
struct Command {
    name: &'static str,
    about: &'static str,
    usage: &'static str,
    run: fn(Args) -> anyhow::Result<()>,
}

const COMMANDS: &[Command] = &[
    Command {
        name: "test",
        about: "run everything CI checks: fmt, clippy, all tests, docs, guards",
        usage: test::USAGE,
        run: test::run_tests,
    },
    Command {
        name: "links",
        about: "check that every relative link in the repository's Markdown names a file of it",
        usage: docs::USAGE,
        run: docs::run_links,
    },
    Command {
        name: "layout",
        about: "list a crate's modules, their lines and imports, and the import cycles between them",
        usage: layout::USAGE,
        run: layout::run,
    },
    Command {
        name: "schemathesis",
        about: "run schemathesis against `mechfund serve` and its OpenAPI document",
        usage: schemathesis::USAGE,
        run: schemathesis::run_schemathesis,
    },
    Command {
        name: "setup",
        about: "install the wasm target, wasm-bindgen-cli, trunk, Chromium, wasm-opt and axe-core",
        usage: tools::USAGE,
        run: tools::run_setup,
    },
    Command {
        name: "wasm",
        about: "build the embeddable JS package into examples/embed/pkg",
        usage: wasm::USAGE,
        run: wasm::run_wasm,
    },
    Command {
        name: "dashboard",
        about: "build the Yew dashboard into dist/ (trunk) and check its 300 KB gzipped budget",
        usage: dashboard::USAGE,
        run: dashboard::run_dashboard,
    },
    Command {
        name: "serve",
        about: "build the dashboard and serve it on http://127.0.0.1:8080/",
        usage: dashboard::SERVE_USAGE,
        run: dashboard::run_serve,
    },
    Command {
        name: "gen-log",
        about: "write a seeded, realistic DDC-format event log",
        usage: gen_log::USAGE,
        run: gen_log::run,
    },
    Command {
        name: "bench",
        about: "measure `mechfund replay` throughput and peak RSS on 100k and 1M-event logs",
        usage: bench::USAGE,
        run: bench::run,
    },
    Command {
        name: "bench-server",
        about: "measure `mechfund serve`: durable donations/s, latency and start-up with 1M events stored",
        usage: bench_server::USAGE,
        run: bench_server::run,
    },
    Command {
        name: "bench-follow",
        about: "measure `mechfund serve --ddc`: append-to-stream latency and memory as DDC's log grows",
        usage: bench_follow::USAGE,
        run: bench_follow::run,
    },
];

fn help() -> String {
    let mut text = String::from("usage: cargo xtask <command> [options]\n\ncommands:\n");
    for c in COMMANDS {
        text.push_str(&format!("  {:<12} {}\n", c.name, c.about));
    }
    text.push_str("\n`cargo xtask <command> --help` shows a command's options.");
    text
}

fn main() -> ExitCode {
    let mut argv = std::env::args().skip(1);
    let Some(name) = argv.next() else {
        eprintln!("{}", help());
        return ExitCode::from(2);
    };
    if matches!(name.as_str(), "help" | "-h" | "--help") {
        println!("{}", help());
        return ExitCode::SUCCESS;
    }
    let Some(command) = COMMANDS.iter().find(|c| c.name == name) else {
        eprintln!("xtask: unknown command {name:?}\n\n{}", help());
        return ExitCode::from(2);
    };
    let args = Args::new(argv.collect());
    if args.wants_help() {
        println!("usage: {}", command.usage);
        return ExitCode::SUCCESS;
    }
    match (command.run)(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {name}: {e:#}");
            ExitCode::FAILURE
        }
    }
}
