//! `carbide`: the one binary whose subcommands are Graphite's roles.

fn main() {
    println!("carbide");
}
