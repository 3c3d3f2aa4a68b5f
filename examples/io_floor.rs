//! The least work benchmark A can be done with: a floor, not a product.
//!
//! `cargo run --release --example io_floor -- INPUT.csv OUT.json`
//!
//! Reads the CSV twice the way sendercheck must (pass one de-duplicates the
//! address cells, pass two writes one JSON object per row, flagging repeats),
//! but skips everything that makes the result correct: no address
//! validation, no IDNA, no line counting, no escaping, one fixed verdict.
//! Each row has the same fields and about the same size as sendercheck's
//! `report.json` row. Whatever this takes, sendercheck cannot beat; the
//! benchmark prints it beside sendercheck's and Python's figures.

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::time::Instant;

type Map = HashMap<Box<[u8]>, u32, foldhash::fast::RandomState>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(input), Some(output)) = (args.next(), args.next()) else {
        return Err("usage: io_floor INPUT.csv OUT.json".into());
    };
    let reader = || {
        csv::ReaderBuilder::new()
            .flexible(true)
            .buffer_capacity(1 << 16)
            .from_path(&input)
    };
    let start = Instant::now();

    // Pass one: distinct address cells, one id per row.
    let mut rows = reader()?;
    let headers = rows.byte_headers()?.clone();
    let column = headers
        .iter()
        .position(|h| h.eq_ignore_ascii_case(b"email"))
        .ok_or("no 'email' column")?;
    let mut ids: Map = Map::default();
    let mut row_ids: Vec<u32> = Vec::new();
    let mut record = csv::ByteRecord::new();
    while rows.read_byte_record(&mut record)? {
        let cell = record.get(column).unwrap_or_default();
        let next = ids.len() as u32;
        let id = match ids.get(cell) {
            Some(&id) => id,
            None => *ids.entry(cell.into()).or_insert(next),
        };
        row_ids.push(id);
    }
    let pass_one = start.elapsed();

    // Pass two: one row object per input row, in input order.
    let mut out = BufWriter::with_capacity(1 << 16, std::fs::File::create(&output)?);
    let mut seen = vec![false; ids.len()];
    let mut rows = reader()?;
    out.write_all(b"{\"schema\":\"sendercheck/1\",\"results\":[\n")?;
    let mut index = 0;
    while rows.read_byte_record(&mut record)? {
        let id = row_ids[index] as usize;
        index += 1;
        let cell = record.get(column).unwrap_or_default();
        let at = cell.iter().rposition(|&b| b == b'@').map_or(0, |i| i + 1);
        if index > 1 {
            out.write_all(b",\n")?;
        }
        write!(out, "{{\"line\":{},\"input\":\"", index + 1)?;
        out.write_all(cell)?;
        out.write_all(b"\",\"address\":\"")?;
        out.write_all(cell)?;
        out.write_all(b"\",\"domain\":\"")?;
        out.write_all(&cell[at..])?;
        out.write_all(b"\",\"verdict\":\"skipped\",\"class\":\"unknown\",\"reason\":\"not checked (--stop-after syntax)\",\"flags\":[")?;
        if seen[id] {
            out.write_all(b"\"duplicate\"")?;
        }
        seen[id] = true;
        out.write_all(b"],\"extra\":{")?;
        let mut first = true;
        for (i, value) in record.iter().enumerate().filter(|&(i, _)| i != column) {
            if !first {
                out.write_all(b",")?;
            }
            first = false;
            out.write_all(b"\"")?;
            out.write_all(&headers[i])?;
            out.write_all(b"\":\"")?;
            out.write_all(value)?;
            out.write_all(b"\"")?;
        }
        out.write_all(b"},\"mx_hosts\":[],\"exim\":null,\"postfix\":null,\"evidence\":null,\"transcript\":[],\"fix\":null}")?;
    }
    out.write_all(b"\n]}\n")?;
    // sendercheck syncs before its atomic rename; so does the floor.
    out.into_inner()?.sync_all()?;
    let total = start.elapsed();
    println!(
        "io_floor: {} rows, {} distinct cells; pass one {:.2} s, pass two {:.2} s, total {:.2} s",
        row_ids.len(),
        ids.len(),
        pass_one.as_secs_f64(),
        (total - pass_one).as_secs_f64(),
        total.as_secs_f64()
    );
    Ok(())
}
