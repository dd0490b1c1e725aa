//! The MMIO bus: the virtio-mmio windows at `MMIO_BASE + i * MMIO_SIZE`, each a transport in
//! front of a device. Register accesses arrive here from the vCPU threads (queue notifications
//! normally do not: they are caught by ioeventfds and go straight to the device's worker).

use crate::devices::{MmioTransport, TransportState, VirtioDevice};
use crate::output::Log;
use spacecore_abi::boot::{DeviceInfo, MAX_DEVICES, device_kind};
use spacecore_abi::layout::{MMIO_BASE, MMIO_SIZE, MMIO_SLOTS};
use std::sync::{Arc, Mutex};

use super::{VmmError, memory::Memory};

/// The devices of a bus, in window order.
pub type Devices = Vec<Box<dyn VirtioDevice>>;

/// The device windows.
#[derive(Debug, Default)]
pub struct Bus {
    windows: Vec<Mutex<MmioTransport>>,
    /// The `spacecore_abi::boot::device_kind` of each window.
    kinds: Vec<u32>,
}

impl Bus {
    /// Puts each device in the next window, in order.
    pub fn new(
        devices: Vec<Box<dyn VirtioDevice>>,
        memory: &Arc<Memory>,
        notifier: crate::devices::Notifier,
    ) -> Result<Self, VmmError> {
        if devices.len() > MAX_DEVICES.min(MMIO_SLOTS as usize) {
            return Err(VmmError::TooManyDevices(devices.len()));
        }
        let kinds = devices
            .iter()
            .map(|d| match d.device_type() {
                crate::devices::TYPE_NET => device_kind::VIRTIO_NET,
                crate::devices::TYPE_BLOCK => device_kind::VIRTIO_BLOCK,
                _ => device_kind::NONE,
            })
            .collect();
        let windows = devices
            .into_iter()
            .enumerate()
            .map(|(i, device)| {
                let base = MMIO_BASE + i as u64 * MMIO_SIZE;
                Mutex::new(MmioTransport::new(device, memory.clone(), notifier.clone(), base))
            })
            .collect();
        Ok(Bus { windows, kinds })
    }

    /// Routes each window's queue notifications to its device through ioeventfds.
    pub fn register_ioeventfds(&self, vm: &kvm_ioctls::VmFd) -> Result<(), VmmError> {
        for window in &self.windows {
            let transport = window.lock().unwrap_or_else(|p| p.into_inner());
            transport.register_ioeventfds(vm).map_err(|e| VmmError::Device(e.to_string()))?;
        }
        Ok(())
    }

    /// Stops every device and gives them back in window order, for the next boot.
    pub fn into_devices(self) -> Vec<Box<dyn VirtioDevice>> {
        self.windows
            .into_iter()
            .map(|window| window.into_inner().unwrap_or_else(|p| p.into_inner()).into_device())
            .collect()
    }

    /// Stops every device, as [`Bus::into_devices`], and says what a snapshot keeps of each
    /// window, in window order (an error if a window cannot be saved).
    pub fn into_saved(self) -> (Result<Vec<TransportState>, String>, Devices) {
        let (mut states, mut devices) = (Vec::new(), Vec::new());
        for window in self.windows {
            let (state, device) = window.into_inner().unwrap_or_else(|p| p.into_inner()).into_saved();
            states.push(state);
            devices.push(device);
        }
        (states.into_iter().collect(), devices)
    }

    /// Starts every device in the state a snapshot kept of its window.
    pub fn restore(&self, states: &[TransportState]) -> Result<(), VmmError> {
        if states.len() != self.windows.len() {
            return Err(VmmError::Device(format!(
                "the snapshot has {} devices, the spec {}",
                states.len(),
                self.windows.len()
            )));
        }
        for (window, state) in self.windows.iter().zip(states) {
            let mut transport = window.lock().unwrap_or_else(|p| p.into_inner());
            transport.restore(state).map_err(VmmError::Device)?;
        }
        Ok(())
    }

    /// The device list for the boot information.
    pub fn device_infos(&self) -> [DeviceInfo; MAX_DEVICES] {
        let mut infos = [DeviceInfo::default(); MAX_DEVICES];
        for (i, (info, &kind)) in infos.iter_mut().zip(&self.kinds).enumerate() {
            let mmio_base = MMIO_BASE + i as u64 * MMIO_SIZE;
            *info = DeviceInfo { kind, irq: 0, mmio_base, mmio_size: MMIO_SIZE };
        }
        infos
    }

    fn window(&self, addr: u64) -> Option<(&Mutex<MmioTransport>, u64)> {
        let offset = addr.checked_sub(MMIO_BASE)?;
        let window = self.windows.get(usize::try_from(offset / MMIO_SIZE).ok()?)?;
        Some((window, offset % MMIO_SIZE))
    }

    /// A guest read at `addr`; false if no device is there.
    pub fn read(&self, addr: u64, data: &mut [u8], log: &Log) -> bool {
        let Some((window, offset)) = self.window(addr) else { return false };
        let mut transport = window.lock().unwrap_or_else(|p| p.into_inner());
        transport.read(offset, data);
        report(&mut transport, log);
        true
    }

    /// A guest write at `addr`; false if no device is there.
    pub fn write(&self, addr: u64, data: &[u8], log: &Log) -> bool {
        let Some((window, offset)) = self.window(addr) else { return false };
        let mut transport = window.lock().unwrap_or_else(|p| p.into_inner());
        transport.write(offset, data);
        report(&mut transport, log);
        true
    }
}

/// Device setup failures (e.g. an activation the device refused) are the launcher's to report;
/// the guest sees the device fail through its status register.
fn report(transport: &mut MmioTransport, log: &Log) {
    if let Some(e) = transport.take_error() {
        log.launcher(format_args!("device at {:#x}: {e}", transport.base()));
    }
}
