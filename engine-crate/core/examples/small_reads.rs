//! Measures reading many small files: rayon with blocking reads versus
//! tokio's async file API. Usage: `small_reads <dir> [threads]`.

use rayon::prelude::*;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("directory");
    let threads: usize = args.next().map_or(2, |t| t.parse().unwrap());
    let files: Vec<String> = pravah_core::scan(&dir, &Default::default()).unwrap().files.into_iter().map(|f| f.0).collect();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build().unwrap();
    for round in 0..3 {
        let t = Instant::now();
        let total: usize = pool.install(|| files.par_iter().map(|p| std::fs::read(p).unwrap().len()).sum());
        let rayon_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let total2: usize = rt.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for p in files.iter().cloned() {
                set.spawn(async move { tokio::fs::read(p).await.unwrap().len() });
            }
            let mut n = 0;
            while let Some(r) = set.join_next().await {
                n += r.unwrap();
            }
            n
        });
        let tokio_s = t.elapsed().as_secs_f64();
        assert_eq!(total, total2);
        println!(
            "round {round}: {} files, {:.1} MB: rayon+blocking {:.3}s ({:.0} files/s), tokio::fs {:.3}s ({:.0} files/s)",
            files.len(),
            total as f64 / 1e6,
            rayon_s,
            files.len() as f64 / rayon_s,
            tokio_s,
            files.len() as f64 / tokio_s
        );
    }
}
