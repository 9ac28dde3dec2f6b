//! EDSR (Lim et al. 2017): a head conv, B residual blocks without batch norm, a
//! conv and a global skip, then conv + pixel shuffle upsampling and a last conv.

use super::layers::Net;
use super::ModelConfig;
use crate::ir::Outlet;
use anyhow::Result;

pub fn edsr(net: &mut Net, x: Outlet, c: &ModelConfig) -> Result<Outlet> {
    let (f, ch) = (c.filters, c.channels);
    let head = net.conv("head.0", x, ch, f, 3)?;
    let mut h = head;
    for i in 0..c.blocks {
        h = res_block(net, &format!("body.{i}"), h, f, c.res_scale)?;
    }
    let h = net.conv(&format!("body.{}", c.blocks), h, f, f, 3)?;
    let h = net.add("body.skip", h, head)?;
    let h = upsampler(net, "tail.0", h, f, c.scale)?;
    net.conv("tail.1", h, f, ch, 3)
}

/// conv3x3, ReLU, conv3x3, x res_scale, + identity.
fn res_block(net: &mut Net, name: &str, x: Outlet, f: usize, res_scale: f32) -> Result<Outlet> {
    let y = net.block_conv(&format!("{name}.body.0"), x, f, f, 3)?;
    let y = net.relu(&format!("{name}.body.1"), y)?;
    let y = net.block_conv(&format!("{name}.body.2"), y, f, f, 3)?;
    let y = net.scale(&format!("{name}.res_scale"), y, res_scale)?;
    net.add(name, y, x)
}

/// conv F -> F*s^2 + pixel shuffle; x4 is two x2 stages, as in EDSR's code.
fn upsampler(net: &mut Net, name: &str, mut x: Outlet, f: usize, scale: usize) -> Result<Outlet> {
    let stages: &[usize] = match scale {
        2 => &[2],
        3 => &[3],
        4 => &[2, 2],
        s => anyhow::bail!("EDSR's upsampler has no x{s} form (2, 3 or 4)"),
    };
    for (j, &s) in stages.iter().enumerate() {
        x = net.conv(&format!("{name}.{}", 2 * j), x, f, f * s * s, 3)?;
        x = net.pixel_shuffle(&format!("{name}.{}", 2 * j + 1), x, s)?;
    }
    Ok(x)
}
