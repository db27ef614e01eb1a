// `lctl dl`: the node's obd devices, one a line, as obd_device_list_seq_show prints them
// (lustre/obdclass/obd_sysfs.c): "%3d %s %s %s %s %d" = index, status, type, name, uuid,
// refcount. Every device here is set up, so the status is UP.
//
// The devices of each target, in mount order, as Lustre sets them up:
//   osd-txg  <target>-osd  <target>-osd_UUID       the target's OSD
//   mgs      MGS           MGS                     an MGS
//   mds      MDS           MDS_uuid                once per node, with the first MDT
//   mdt      <MDT>         <MDT uuid>
//   lod      <MDT>-mdtlov  <MDT>-mdtlov_UUID
//   osp      <fs>-OSTxxxx-osc-MDTyyyy  <MDT>-mdtlov_UUID   one per OST the MDT uses
//   ost      OSS           OSS_uuid                once per node, with the first OST
//   obdfilter <OST>        <OST uuid>
// The refcount is Lustre's sense of it, approximated: one for the device itself plus one per
// user (an export, a service module on an OSD, an OSP on its LOD).
import { MGS_TARGET_UUID } from '../../services/mgs/index.js';
import { clientUuids, OSD_TYPE, partsOf } from './nodes.js';
import type { KernelView } from './index.js';

interface Device {
  type: string;
  name: string;
  uuid: string;
  refcount: number;
}

export function deviceList(view: KernelView): string {
  const devices: Device[] = [];
  let mds = false;
  let oss = false;
  for (const p of view.targets().map(partsOf)) {
    const t = p.target;
    devices.push({ type: OSD_TYPE, name: `${t.svname}-osd`, uuid: `${t.svname}-osd_UUID`, refcount: 1 + t.running.length });
    if (p.mgsServices.length > 0) {
      devices.push({ type: 'mgs', name: 'MGS', uuid: MGS_TARGET_UUID, refcount: 1 + clientUuids(p.mgsServices).size });
    }
    if (p.mdt) {
      if (!mds) {
        mds = true;
        devices.push({ type: 'mds', name: 'MDS', uuid: 'MDS_uuid', refcount: 1 });
      }
      devices.push({ type: 'mdt', name: t.svname, uuid: t.mountdata.uuid, refcount: 1 + clientUuids(p.mdt.services).size });
      const lov = `${t.svname}-mdtlov`;
      devices.push({ type: 'lod', name: lov, uuid: `${lov}_UUID`, refcount: 1 + p.mdt.osps.size });
      const mdtIndex = t.svname.slice(t.svname.lastIndexOf('-') + 1);
      for (const index of [...p.mdt.osps.keys()].sort((a, b) => a - b)) {
        const ost = `${t.mountdata.fsname}-OST${index.toString(16).padStart(4, '0')}`;
        devices.push({ type: 'osp', name: `${ost}-osc-${mdtIndex}`, uuid: `${lov}_UUID`, refcount: 1 });
      }
    }
    if (p.ost) {
      if (!oss) {
        oss = true;
        devices.push({ type: 'ost', name: 'OSS', uuid: 'OSS_uuid', refcount: 1 });
      }
      devices.push({ type: 'obdfilter', name: t.svname, uuid: t.mountdata.uuid, refcount: 1 + clientUuids(p.ost.services).size });
    }
  }
  return devices.map((d, i) => `${String(i).padStart(3)} UP ${d.type} ${d.name} ${d.uuid} ${d.refcount}\n`).join('');
}
