//! Times one op over a directory of CSVs. Usage:
//! `bench_ops <stats|convert> <dir> [threads] [runs] [result.json]`.

use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let op = args.next().expect("op");
    let dir = args.next().expect("directory");
    let threads: usize = args.next().map_or(2, |t| t.parse().unwrap());
    let runs: usize = args.next().map_or(3, |t| t.parse().unwrap());
    let out = args.next();
    let files: Vec<pravah_core::FileTask> = pravah_core::scan(&dir, &Default::default())
        .unwrap()
        .files
        .into_iter()
        .map(|f| pravah_core::FileTask::new(f.0, f.1))
        .collect();
    let bytes: u64 = files.iter().map(|f| f.size).sum();
    let options = match op.as_str() {
        "stats" => r#"{"delimiter": ",", "header": true, "quantiles": [0.5, 0.99], "top": 5}"#.to_string(),
        "convert" => {
            let d = std::env::temp_dir().join("bench_ops_convert");
            format!(r#"{{"compression": "zstd", "output_dir": "{}"}}"#, d.display())
        }
        _ => panic!("op"),
    };
    let mut best = f64::MAX;
    let mut doc = String::new();
    for _ in 0..runs {
        let t = Instant::now();
        let job = pravah_core::Job::start(&op, &options, files.clone(), pravah_core::Inputs::default(), threads, false).unwrap();
        doc = job.wait(None).unwrap().unwrap().document().unwrap();
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!("{op} {threads}t: {} files {:.1} MB best {:.3}s = {:.0} MB/s", files.len(), bytes as f64 / 1e6, best, bytes as f64 / 1e6 / best);
    if let Some(o) = out {
        std::fs::write(o, doc).unwrap();
    }
}
