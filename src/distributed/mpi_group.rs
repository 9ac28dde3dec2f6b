//! The group over MPI (rsmpi): `MPI_Allreduce` with `MPI_SUM` on float32.

use super::Group;
use anyhow::{Context, Result};
use mpi::collective::SystemOperation;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::CommunicatorCollectives;

pub struct MpiGroup {
    // Finalises MPI when dropped, after the communicator.
    world: SimpleCommunicator,
    _universe: mpi::environment::Universe,
    scratch: Vec<f32>,
}

impl MpiGroup {
    pub fn init() -> Result<MpiGroup> {
        let universe = mpi::initialize().context("MPI could not start (is this process run by mpirun?)")?;
        Ok(MpiGroup {
            world: universe.world(),
            _universe: universe,
            scratch: Vec::new(),
        })
    }
}

impl Group for MpiGroup {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn size(&self) -> usize {
        self.world.size() as usize
    }

    fn sum(&mut self, buf: &mut [f32]) -> Result<()> {
        self.scratch.clear();
        self.scratch.extend_from_slice(buf);
        // MPI's default error handler ends the job on failure (a rank that died): no hang.
        self.world
            .all_reduce_into(&self.scratch[..], buf, SystemOperation::sum());
        Ok(())
    }

    fn barrier(&mut self) -> Result<()> {
        self.world.barrier();
        Ok(())
    }
}
