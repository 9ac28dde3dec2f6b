//! WDSR-A and WDSR-B (Yu et al. 2018): wide activation before the ReLU, no conv
//! after the body, and a 5x5 skip branch from the input straight to the output.

use super::layers::Net;
use super::{Arch, ModelConfig};
use crate::ir::Outlet;
use anyhow::Result;

pub fn wdsr(net: &mut Net, x: Outlet, c: &ModelConfig) -> Result<Outlet> {
    let (f, s) = (c.filters, c.scale);
    let skip = net.conv("skip.0", x, 3, 3 * s * s, 5)?;
    let skip = net.pixel_shuffle("skip.1", skip, s)?;
    let mut h = net.conv("head.0", x, 3, f, 3)?;
    for i in 0..c.blocks {
        let name = format!("body.{i}");
        h = match c.arch {
            Arch::WdsrA => block_a(net, &name, h, c)?,
            _ => block_b(net, &name, h, c)?,
        };
    }
    let tail = net.conv("tail.0", h, f, 3 * s * s, 3)?;
    let tail = net.pixel_shuffle("tail.1", tail, s)?;
    net.add("out", tail, skip)
}

/// WDSR-A: conv3x3 F -> F*e, ReLU, conv3x3 F*e -> F, x res_scale, + identity.
fn block_a(net: &mut Net, name: &str, x: Outlet, c: &ModelConfig) -> Result<Outlet> {
    let (f, wide) = (c.filters, c.wide());
    let y = net.block_conv(&format!("{name}.body.0"), x, f, wide, 3)?;
    let y = net.relu(&format!("{name}.body.1"), y)?;
    let y = net.block_conv(&format!("{name}.body.2"), y, wide, f, 3)?;
    let y = net.scale(&format!("{name}.res_scale"), y, c.res_scale)?;
    net.add(name, y, x)
}

/// WDSR-B: expand 1x1, ReLU, low-rank 1x1, 3x3, x res_scale, + identity.
fn block_b(net: &mut Net, name: &str, x: Outlet, c: &ModelConfig) -> Result<Outlet> {
    let (f, wide, low) = (c.filters, c.wide(), c.low_rank());
    let y = net.block_conv(&format!("{name}.body.0"), x, f, wide, 1)?;
    let y = net.relu(&format!("{name}.body.1"), y)?;
    let y = net.block_conv(&format!("{name}.body.2"), y, wide, low, 1)?;
    let y = net.block_conv(&format!("{name}.body.3"), y, low, f, 3)?;
    let y = net.scale(&format!("{name}.res_scale"), y, c.res_scale)?;
    net.add(name, y, x)
}
