//! Data-parallel training over several processes, as Horovod does it: every rank holds
//! the whole model, computes the gradients of its share of each step's batch, the
//! gradients are summed across ranks with MPI's allreduce (one flat buffer per step), and
//! every rank applies the same Adam update, so the parameters stay identical.
//!
//! srgraph joins the processes `mpirun` started (OpenMPI, or any MPI rsmpi builds on)
//! when the launcher's environment says there are several; the MPI binding is the cargo
//! feature `mpi`. MPI is the transport and the launcher: srgraph adds no scheduler or
//! transport of its own, and a rank that dies is MPI's to report (mpirun ends the job).

#[cfg(feature = "mpi")]
mod mpi_group;
mod trainer;

pub use trainer::DataParallelTrainer;

use anyhow::Result;

/// This process's place in the job, as the launcher's environment gives it before MPI
/// starts: OpenMPI's `OMPI_COMM_WORLD_*`, or MPICH's `PMI_*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Launch {
    pub rank: usize,
    pub size: usize,
    /// Rank among the processes on this machine: which GPU a rank takes.
    pub local_rank: usize,
}

fn var(name: &str) -> Option<usize> {
    std::env::var(name).ok()?.trim().parse().ok()
}

/// Several processes launched together (size > 1), or None for a plain run.
pub fn launch() -> Option<Launch> {
    let (rank, size, local) = if let Some(size) = var("OMPI_COMM_WORLD_SIZE") {
        (var("OMPI_COMM_WORLD_RANK")?, size, var("OMPI_COMM_WORLD_LOCAL_RANK"))
    } else if let Some(size) = var("PMI_SIZE") {
        (var("PMI_RANK")?, size, var("MPI_LOCALRANKID"))
    } else {
        return None;
    };
    (size > 1).then_some(Launch {
        rank,
        size,
        local_rank: local.unwrap_or(0),
    })
}

/// Whether this process writes the run's files and prints: rank 0, or a plain run.
pub fn is_leader() -> bool {
    launch().is_none_or(|l| l.rank == 0)
}

/// The processes training one model.
pub trait Group {
    fn rank(&self) -> usize;
    fn size(&self) -> usize;
    /// Every rank's `buf` summed element-wise, into every rank's `buf`.
    fn sum(&mut self, buf: &mut [f32]) -> Result<()>;
    /// Returns once every rank has called it.
    fn barrier(&mut self) -> Result<()> {
        self.sum(&mut [0.0])
    }
}

/// The group this process was launched into, or None when it runs alone. A rank's CUDA
/// sessions run on the GPU of its local rank: one rank per GPU.
pub fn join() -> Result<Option<Box<dyn Group>>> {
    let Some(l) = launch() else { return Ok(None) };
    crate::runtime::ort::set_cuda_device(l.local_rank as i32);
    #[cfg(feature = "mpi")]
    {
        let group = mpi_group::MpiGroup::init()?;
        anyhow::ensure!(
            group.size() == l.size && group.rank() == l.rank,
            "MPI says rank {} of {}, the launcher's environment rank {} of {}",
            group.rank(),
            group.size(),
            l.rank,
            l.size
        );
        Ok(Some(Box::new(group)))
    }
    #[cfg(not(feature = "mpi"))]
    anyhow::bail!(
        "this process is rank {} of {} launched by mpirun, but this srgraph was built without MPI: build it with \
         `cargo install --path . --features mpi` (OpenMPI's libopenmpi-dev and libclang-dev are needed to build; \
         tools/setup/setup-mpi.sh installs them), or run it without mpirun",
        l.rank,
        l.size
    )
}
