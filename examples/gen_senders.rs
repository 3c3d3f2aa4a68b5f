//! Generates a deterministic sender list for benchmarks.
//!
//! `cargo run --release --example gen_senders -- ROWS DOMAINS [OUT]`
//!
//! Columns: `campaign,email,owner`. Row i uses domain `d{i % DOMAINS}.bench.test`
//! (so every domain appears), a handful of local parts, some mixed case, a few
//! quoted fields with commas, and about 1 row in 500 invalid (no `@`, double
//! `@`, empty). Same arguments, same bytes.

use std::io::{self, BufWriter, Write};

/// SplitMix64: tiny, deterministic, good enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

const LOCALS: [&str; 8] = [
    "news",
    "newsletter",
    "bounces",
    "info",
    "marketing",
    "noreply",
    "updates",
    "billing",
];
const CAMPAIGNS: [&str; 5] = [
    "spring-sale",
    "weekly-digest",
    "launch",
    "survey",
    "renewal",
];

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let rows: u64 = args
        .get(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let domains: u64 = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(50_000)
        .max(1);
    let out: Box<dyn Write> = match args.get(3).map(String::as_str) {
        None | Some("-") => Box::new(io::stdout().lock()),
        Some(path) => Box::new(std::fs::File::create(path)?),
    };
    let mut out = BufWriter::with_capacity(1 << 20, out);
    let mut rng = Rng(0x5EED);
    writeln!(out, "campaign,email,owner")?;
    for i in 0..rows {
        let r = rng.next();
        let d = i % domains;
        let campaign = CAMPAIGNS[(r % 5) as usize];
        let local = LOCALS[((r >> 8) % 8) as usize];
        let owner_n = (r >> 16) % 1000;
        match (r >> 32) % 500 {
            0 => writeln!(
                out,
                "{campaign},{local}.d{d}.bench.test,owner{owner_n}@corp.test"
            )?,
            1 => writeln!(
                out,
                "{campaign},{local}@@d{d}.bench.test,owner{owner_n}@corp.test"
            )?,
            2 => writeln!(out, "{campaign},,owner{owner_n}@corp.test")?,
            3 => writeln!(
                out,
                "\"{campaign}, reissued\",{local}@d{d}.bench.test,\"Owner {owner_n}, Marketing\""
            )?,
            4 => writeln!(
                out,
                "{campaign},{}@D{d}.Bench.Test,owner{owner_n}@corp.test",
                local.to_uppercase()
            )?,
            _ => writeln!(
                out,
                "{campaign},{local}@d{d}.bench.test,owner{owner_n}@corp.test"
            )?,
        }
    }
    out.flush()
}
