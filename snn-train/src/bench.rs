//! `snn bench`: time training or inference steps of a config's model on
//! random inputs of its shape, and report the median / min / max step time,
//! images per second and the process's peak memory.

use crate::config::RunConfig;
use crate::session::{build_model, optimizer};
use crate::step::{train_step, Learner, StepBatch};
use serde::Serialize;
use snn_core::dfdx::prelude::*;
use snn_core::init;
use snn_core::spec::Forward;
use snn_core::{collective, dense_work, device, Error, Result};
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Train,
    Infer,
    /// A generative model drawing `batch` images (what `snn generate`
    /// does per batch, without writing them).
    Sample,
}

#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// The config's dataset (its input shape is the benchmark's).
    pub dataset: String,
    pub mode: String,
    /// The global batch: `ranks` processes each step a contiguous slice.
    pub batch: usize,
    /// Processes stepping together (MPI ranks; 1 without MPI).
    pub ranks: usize,
    /// This rank's slice of the batch (rank 0's when printed).
    pub local_batch: usize,
    pub time_steps: usize,
    /// Untimed steps before the timed ones.
    pub warmup: usize,
    pub steps: usize,
    pub median_s: f64,
    pub min_s: f64,
    pub max_s: f64,
    pub images_per_second: f64,
    /// Peak resident memory of the process (VmHWM), MiB; 0 if unknown.
    pub peak_rss_mib: f64,
    pub device: String,
    /// Floating-point operations of the step's layer products done densely
    /// (forward only when inferring or sampling; forward, input gradient
    /// and weight gradient when training), GFLOP ([`dense_work`]).
    pub dense_gflop: f64,
    /// This machine's measured dense GEMM rate, GFLOP/s.
    pub gemm_peak_gflops: f64,
    /// `dense_gflop / gemm_peak_gflops`: the step time a dense engine
    /// running every product at peak could not beat.
    pub dense_floor_s: f64,
    /// Median seconds of a training step spent in reductions across ranks
    /// (gradients, synchronised batch norm, the step's figures; waiting
    /// for a slower rank counts too); 0 for one process.
    pub comm_median_s: f64,
    /// Bytes of gradient one step sums across ranks (each rank sends and
    /// receives about twice this in a ring all-reduce); 0 for one process.
    pub reduced_gradient_bytes: usize,
    /// Reductions in one training step (one for the gradients, two per
    /// batch norm, one for the step's figures); 0 for one process.
    pub reductions_per_step: u64,
    /// Median seconds of each phase of a training step (absent when
    /// inferring): where a step's time goes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phases: Option<Phases>,
}

/// Medians of the phases of a training step, in seconds. Each is its own
/// median, so they need not add up to the step's.
#[derive(Clone, Debug, Serialize)]
pub struct Phases {
    /// The model's forward pass and loss, recording the tape.
    pub forward_s: f64,
    /// The backward pass over the tape.
    pub backward_s: f64,
    /// The optimizer step and the layers' running-statistics updates.
    pub update_s: f64,
}

pub fn run(
    cfg: &RunConfig,
    batch: usize,
    mode: Mode,
    warmup: usize,
    steps: usize,
) -> Result<BenchReport> {
    let (shape, classes) = snn_data::input_shape(&cfg.data)?;
    let dev = device::create(cfg.seed)?;
    let mut rng = init::rng(cfg.seed);
    let (mut store, model) = build_model(cfg, shape, classes, &dev)?;
    let generator = match (mode, model.generator()) {
        (Mode::Sample, None) => return Err(Error::invalid(
            "model.type",
            "--mode sample needs a generative model (fsvae, annvae); this config's model has none",
        )),
        (_, generator) => generator,
    };
    let mut opt = optimizer(cfg);
    let [c, h, w] = shape;
    let n = batch * c * h * w;
    let (rank, ranks) = (collective::group().rank(), collective::group().size());
    if mode == Mode::Train && batch < ranks {
        return Err(Error::invalid(
            "--batch",
            format!("{batch} images cannot be split over {ranks} ranks (each needs one)"),
        ));
    }
    // Training splits the batch; inference and sampling run it whole on
    // every rank (they have no reductions to time).
    let mine = match mode {
        Mode::Train => collective::shard(batch, rank, ranks),
        _ => 0..batch,
    };
    let (mut comm, mut reduced, mut reductions) = (Vec::with_capacity(steps), 0, 0);
    let mut times = Vec::with_capacity(steps);
    let mut phases: [Vec<f64>; 3] = Default::default();
    let mut macs = 0;
    dense_work::take();
    for i in 0..warmup + steps {
        let images = init::uniform(&mut rng, n, 0.0, 1.0);
        let labels: Vec<u8> = (0..batch).map(|k| ((k * 7 + i) % classes) as u8).collect();
        let per = c * h * w;
        let images = images[mine.start * per..mine.end * per].to_vec();
        let labels = labels[mine.clone()].to_vec();
        let t0 = Instant::now();
        let x = dev.tensor_from_vec(images, (mine.len(), c, h, w));
        match mode {
            Mode::Train => {
                let mut ends = [t0; 3];
                let mut mark = |phase: usize| ends[phase] = Instant::now();
                let mut learner = Learner {
                    model: model.as_ref(),
                    store: &mut store,
                    opt: &mut opt,
                    lr: cfg.train.lr,
                };
                let step = StepBatch {
                    images: x,
                    labels: &labels,
                    global: batch,
                    draws: None,
                    progress: 0.0,
                    keep_gradients: false,
                };
                let out = train_step(&mut learner, step, &mut rng, &mut mark)?;
                if i >= warmup {
                    comm.push(out.comm_s);
                    reduced = out.reduced_values;
                    reductions = out.reductions;
                    let starts = [t0, ends[0], ends[1]];
                    for ((p, a), b) in phases.iter_mut().zip(starts).zip(ends) {
                        p.push((b - a).as_secs_f64());
                    }
                }
            }
            Mode::Infer => snn_core::grad::no_grad(|| -> Result<()> {
                let x = x.traced(Gradients::leaky());
                let mut fwd = Forward::new(&store, false, &mut rng);
                let out = model.forward(x, &mut fwd)?;
                let _ = out.retaped::<NoneTape>().as_vec();
                Ok(())
            })?,
            // `generator` is `Some` in this mode (checked above).
            Mode::Sample => snn_core::grad::no_grad(|| -> Result<()> {
                let Some(generator) = generator else {
                    return Ok(());
                };
                let mut fwd = Forward::new(&store, false, &mut rng);
                let images = generator.sample(batch, &mut fwd)?;
                let _ = images.retaped::<NoneTape>().as_vec();
                Ok(())
            })?,
        }
        if i >= warmup {
            times.push(t0.elapsed().as_secs_f64());
        }
        if i == 0 {
            macs = dense_work::take();
        }
    }
    if times.is_empty() {
        return Err(Error::invalid("steps", "at least one timed step is needed"));
    }
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let median = sorted[sorted.len() / 2];
    let phases = (mode == Mode::Train).then(|| {
        let [forward_s, backward_s, update_s] = phases.map(|mut p| {
            p.sort_by(|a, b| a.total_cmp(b));
            p[p.len() / 2]
        });
        Phases {
            forward_s,
            backward_s,
            update_s,
        }
    });
    // A training step's backward does two products per forward one.
    let products = if mode == Mode::Train { 3.0 } else { 1.0 };
    let dense_gflop = 2.0 * products * macs as f64 / 1e9;
    let gemm_peak_gflops = dense_work::gemm_peak_flops(&dev) / 1e9;
    comm.sort_by(|a, b| a.total_cmp(b));
    Ok(BenchReport {
        dataset: cfg.data.dataset.clone(),
        mode: format!("{mode:?}").to_lowercase(),
        batch,
        ranks,
        local_batch: mine.len(),
        comm_median_s: comm.get(comm.len() / 2).copied().unwrap_or(0.0),
        reduced_gradient_bytes: reduced * 4,
        reductions_per_step: reductions,
        time_steps: cfg.time_steps,
        warmup,
        steps: times.len(),
        median_s: median,
        min_s: sorted[0],
        max_s: sorted[sorted.len() - 1],
        images_per_second: batch as f64 / median,
        peak_rss_mib: peak_rss_mib(),
        device: device::DEVICE_NAME.into(),
        dense_gflop,
        gemm_peak_gflops,
        dense_floor_s: dense_gflop / gemm_peak_gflops,
        phases,
    })
}

/// Seconds per 1,000 images of the scoring networks, as `snn metrics` runs
/// them on samples of the config's shape (`snn bench --mode metrics`).
#[derive(Clone, Debug, Serialize)]
pub struct MetricBench {
    pub dataset: String,
    /// `[C, H, W]` of the images fed (random pixels).
    pub shape: [usize; 3],
    pub images: usize,
    /// FID: Inception-v3 pool features, images resized to 299 by the
    /// paper's protocol (clean-fid's bicubic); `None` without the weights.
    pub fid_s_per_1000: Option<f64>,
    /// FAD: the FSVAE authors' encoder with its batch statistics, as their
    /// code runs it (resize to its input, embed, fit the Gaussian and the
    /// distance); `None` where the dataset has no such network here.
    pub fad_s_per_1000: Option<f64>,
    /// Each network's dense-GEMM floor per 1,000 images: its products'
    /// FLOPs at the measured GEMM peak (`gemm_peak_gflops`).
    pub fid_floor_s_per_1000: Option<f64>,
    pub fad_floor_s_per_1000: Option<f64>,
    pub gemm_peak_gflops: f64,
    /// Why a network was not timed.
    pub skipped: Vec<String>,
    pub peak_rss_mib: f64,
}

/// Times the FID and FAD networks on `images` random images of `cfg`'s
/// shape (each after an untimed batch of 8), with the Inception weights at
/// `inception` and the authors' FAD files in `fad_dir`.
pub fn metric_networks(
    cfg: &RunConfig,
    images: usize,
    inception: &std::path::Path,
    fad_dir: &std::path::Path,
) -> Result<MetricBench> {
    use crate::scores::{self, PaperFad, Pixels};
    if images == 0 {
        return Err(Error::invalid("--batch", "at least one image is needed"));
    }
    let (shape, _) = snn_data::input_shape(&cfg.data)?;
    let mut rng = init::rng(cfg.seed);
    let pixels = Pixels {
        shape,
        data: init::uniform(
            &mut rng,
            images * shape.iter().product::<usize>(),
            0.0,
            255.0,
        ),
    };
    let peak = dense_work::gemm_peak_flops(&device::create(cfg.seed)?);
    // (seconds, floor seconds) per 1,000 images of a run that started at t0.
    let per_1000 = |t0: Instant| {
        let scale = 1000.0 / images as f64;
        let floor = 2.0 * dense_work::take() as f64 / peak;
        (t0.elapsed().as_secs_f64() * scale, floor * scale)
    };
    let mut skipped = Vec::new();
    let fid = if inception.exists() {
        let net = scores::load_inception(inception)?;
        let (resize, input) = (snn_metrics::Resize::Bicubic, snn_metrics::Input::Native);
        scores::inception_embed(&net, &pixels.first(8), resize, input, "warm-up")?;
        dense_work::take();
        let t0 = Instant::now();
        scores::inception_embed(&net, &pixels, resize, input, "fid network")?;
        Some(per_1000(t0))
    } else {
        skipped.push(format!(
            "fid: no Inception weights at {} (scripts/fetch-data.sh inception)",
            inception.display()
        ));
        None
    };
    let fad = match scores::paper_files(&cfg.data.dataset, fad_dir) {
        Some((weights, reference)) if weights.exists() => {
            let bn = snn_metrics::fad::BatchNorm::Batch;
            let fad = PaperFad::load(&weights, &reference, bn)?;
            fad.score(&pixels.first(8))?;
            dense_work::take();
            let t0 = Instant::now();
            fad.score(&pixels)?;
            Some(per_1000(t0))
        }
        Some((weights, _)) => {
            skipped.push(format!("fad: no network at {}", weights.display()));
            None
        }
        None => {
            skipped.push(format!(
                "fad: the FSVAE authors' network exists for mnist and fmnist, not `{}`",
                cfg.data.dataset
            ));
            None
        }
    };
    Ok(MetricBench {
        dataset: cfg.data.dataset.clone(),
        shape,
        images,
        fid_s_per_1000: fid.map(|t| t.0),
        fad_s_per_1000: fad.map(|t| t.0),
        fid_floor_s_per_1000: fid.map(|t| t.1),
        fad_floor_s_per_1000: fad.map(|t| t.1),
        gemm_peak_gflops: peak / 1e9,
        skipped,
        peak_rss_mib: peak_rss_mib(),
    })
}

/// The process's peak resident set size from /proc (Linux), in MiB.
pub fn peak_rss_mib() -> f64 {
    snn_core::procfs::kib("/proc/self/status", "VmHWM").map_or(0.0, |kb| kb as f64 / 1024.0)
}
