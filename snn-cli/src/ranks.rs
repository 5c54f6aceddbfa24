//! The process group `snn` runs in. Built with `--features mpi` and started
//! by a launcher (`mpirun -np N snn ...`, or SLURM's `srun`), it joins the
//! MPI world and installs it as the training code's group
//! (`snn_core::collective`); otherwise it is one process, as it always was.

/// Holds MPI open while `snn` runs; [`Ranks::finish`] (or dropping it)
/// closes it. A process that exits without closing MPI makes `mpirun`
/// report it as failed, so every exit path goes through here.
pub struct Ranks {
    #[cfg(feature = "mpi")]
    universe: Option<mpi::environment::Universe>,
}

/// Environment variables a launcher sets for each process it starts:
/// Open MPI's `mpirun`, PMIx (`srun --mpi=pmix`), PMI-2 (`srun --mpi=pmi2`).
#[cfg(feature = "mpi")]
const LAUNCHED_BY: [&str; 3] = ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"];

impl Ranks {
    /// Joins the MPI world when a launcher started this process (a plain
    /// `snn` never initialises MPI: no daemon, no delay, no output).
    pub fn start() -> Self {
        #[cfg(feature = "mpi")]
        {
            if !LAUNCHED_BY.iter().any(|v| std::env::var_os(v).is_some()) {
                return Self { universe: None };
            }
            // Only the main thread calls MPI (the kernels' threads never
            // do): FUNNELED is all that is needed.
            let Some((universe, _)) = mpi::initialize_with_threading(mpi::Threading::Funneled)
            else {
                eprintln!("error: MPI was already initialised");
                std::process::exit(1);
            };
            let group = mpi_group::MpiGroup::world();
            snn_core::collective::install(Box::new(group));
            Self {
                universe: Some(universe),
            }
        }
        #[cfg(not(feature = "mpi"))]
        Self {}
    }

    /// Closes MPI (every rank must reach this) and exits with `code`.
    pub fn finish(self, code: i32) -> ! {
        #[cfg(feature = "mpi")]
        drop(self);
        std::process::exit(code)
    }

    /// Prints the error and ends the run with exit code 1. One process
    /// just exits; a rank of several prints (naming itself, unless it is
    /// rank 0) and aborts the whole MPI job: the other ranks may be
    /// waiting for it inside a reduction, and would otherwise wait for
    /// ever.
    pub fn fail(self, msg: &str) -> ! {
        let group = snn_core::collective::group();
        if group.size() == 1 {
            eprintln!("error: {msg}");
            self.finish(1);
        }
        match group.rank() {
            0 => eprintln!("error: {msg}"),
            r => eprintln!("error (rank {r} of {}): {msg}", group.size()),
        }
        #[cfg(feature = "mpi")]
        {
            use mpi::traits::Communicator;
            mpi::topology::SimpleCommunicator::world().abort(1)
        }
        #[cfg(not(feature = "mpi"))]
        self.finish(1)
    }

    /// Ranks sharing this machine (and its memory): what the launcher
    /// says (Open MPI's `OMPI_COMM_WORLD_LOCAL_SIZE`, SLURM's
    /// `SLURM_NTASKS_PER_NODE`), else 1.
    pub fn on_this_machine() -> usize {
        ["OMPI_COMM_WORLD_LOCAL_SIZE", "SLURM_NTASKS_PER_NODE"]
            .iter()
            .find_map(|v| std::env::var(v).ok()?.parse().ok())
            .filter(|n| *n >= 1)
            .unwrap_or(1)
    }

    /// Under Open MPI's `mpirun`, Ctrl-C aborts the job: the ranks get
    /// SIGTERM and, `odls_base_sigkill_timeout` seconds later (1 by
    /// default), SIGKILL. A step longer than that never reaches its
    /// checkpoint; say so at start when the timeout is short. (`mpirun
    /// --mca` and `OMPI_MCA_*` both reach the ranks as this variable; an
    /// MCA parameter file does not, and then this warns needlessly.)
    pub fn stop_warning() -> Option<String> {
        let group = snn_core::collective::group();
        if group.size() == 1 || std::env::var_os("OMPI_COMM_WORLD_SIZE").is_none() {
            return None;
        }
        let var = "OMPI_MCA_odls_base_sigkill_timeout";
        let timeout: u64 = std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        (timeout < 60).then(|| {
            format!(
                "note: Ctrl-C to mpirun kills the ranks {timeout} s after asking them to stop, \
                 too soon to finish a long step and checkpoint; export {var}=600 (or mpirun \
                 --mca odls_base_sigkill_timeout 600) to let them"
            )
        })
    }

    /// Whether this process prints: rank 0 does, the others stay quiet
    /// (their figures are rank 0's; an error is printed by every rank).
    pub fn prints() -> bool {
        snn_core::collective::group().rank() == 0
    }
}

#[cfg(feature = "mpi")]
impl Drop for Ranks {
    fn drop(&mut self) {
        // MPI_Finalize, once.
        self.universe.take();
    }
}

#[cfg(feature = "mpi")]
mod mpi_group {
    use mpi::collective::SystemOperation;
    use mpi::topology::SimpleCommunicator;
    use mpi::traits::*;
    use snn_core::collective::Collective;

    /// `MPI_COMM_WORLD` as the training code's group. Reductions are
    /// `MPI_Allreduce` (the library picks the algorithm: ring, recursive
    /// doubling, ... by size, deterministically for a given rank count and
    /// message size); the broadcast is `MPI_Bcast` of a length, then the
    /// bytes.
    pub struct MpiGroup {
        rank: usize,
        size: usize,
    }

    impl MpiGroup {
        pub fn world() -> Self {
            let w = SimpleCommunicator::world();
            Self {
                rank: w.rank() as usize,
                size: w.size() as usize,
            }
        }
    }

    impl Collective for MpiGroup {
        fn rank(&self) -> usize {
            self.rank
        }

        fn size(&self) -> usize {
            self.size
        }

        fn sum_f64(&self, values: &mut [f64]) {
            let send = values.to_vec();
            SimpleCommunicator::world().all_reduce_into(&send[..], values, SystemOperation::sum());
        }

        fn sum_f32(&self, values: &mut [f32]) {
            let send = values.to_vec();
            SimpleCommunicator::world().all_reduce_into(&send[..], values, SystemOperation::sum());
        }

        fn broadcast(&self, bytes: &mut Vec<u8>) {
            let world = SimpleCommunicator::world();
            let root = world.process_at_rank(0);
            let mut len = bytes.len() as u64;
            root.broadcast_into(&mut len);
            bytes.resize(len as usize, 0);
            root.broadcast_into(&mut bytes[..]);
        }

        fn describe(&self) -> String {
            let library = mpi::environment::library_version().unwrap_or_default();
            // "Open MPI v4.1.4, package: ..., ident: ...": its name.
            let library = library
                .split([',', '\n'])
                .next()
                .unwrap_or("MPI")
                .trim()
                .to_string();
            format!("{} ranks over MPI ({library})", self.size)
        }
    }
}
