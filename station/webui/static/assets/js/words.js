// What codes mean, in words an operator acts on. The server's own message
// is shown under these as the detail.

const exceptions = {
  UNKNOWN_WAYBILL: 'No waybill for this number',
  CANCELLED: 'Cancelled by the sender',
  INTERCEPTED: 'Intercepted: hold this parcel',
  ALREADY_DELIVERED: 'Already delivered',
  OUT_FOR_DELIVERY: 'Already out for delivery',
  UNPAID: 'Not paid',
  COD_LIMIT: 'Cash on delivery over the limit',
  WRONG_STATION: 'Not routed via this station',
  RESTRICTED: 'Restricted goods for the next leg',
  NO_FISCAL_DOCUMENT: 'Fiscal document missing',
  BAD_ADDRESS: 'Address cannot be delivered',
  CUSTOMER_BLOCKED: 'Customer blocked',
  NO_ROUTE: 'No route to the destination',
  NO_CHUTE: 'No chute for this next hop',
  DOWNSTREAM_UNAVAILABLE: 'A system did not answer: put aside, scan again later',
};

export function exceptionWords(code) {
  return exceptions[code] || String(code || 'Exception').replaceAll('_', ' ').toLowerCase();
}

// explain turns an API error into {title, detail} for a message box.
export function explain(err) {
  const e = err || {};
  const d = e.details || {};
  const m = e.message || '';
  switch (e.code) {
    case 'network':
      return {title: 'No connection to the station server', detail: 'Nothing was saved. Scan again when the connection is back.'};
    case 'invalid_tracking_no':
      return {title: 'Not a tracking number', detail: m};
    case 'wrong_next_hop':
      return {title: `Wrong bag: this parcel goes to ${d.parcel_next_hop || 'another site'}`,
        detail: `This bag is for ${d.bag_next_hop || 'another next hop'}. Put the parcel in a bag for ${d.parcel_next_hop || 'its next hop'}.`};
    case 'not_sorted':
      if (d.exception_code) {
        return {title: `Exception parcel: ${exceptionWords(d.exception_code)}`, detail: 'It cannot be bagged. Take it to the exception area.'};
      }
      return {title: 'Not sorted here yet', detail: 'Sort the parcel first, then bag it.'};
    case 'already_bagged':
      return {title: `Already in bag ${d.bag_id || ''}`.trim(), detail: 'Remove it from that bag first if it must move.'};
    case 'bag_sealed':
      return {title: 'This bag is sealed', detail: 'A sealed bag cannot change. Open a new bag.'};
    case 'bag_empty':
      return {title: 'The bag is empty', detail: 'Scan parcels in before sealing.'};
    case 'invalid_weight':
      return {title: 'Weight out of range', detail: d.min_g !== undefined ? `Enter between ${d.min_g} and ${d.max_g} grams.` : m};
    case 'not_in_bag':
      return {title: 'That parcel is not in this bag', detail: m};
    case 'bag_not_found':
      return {title: 'No such bag', detail: m};
    case 'bag_not_sealed':
      return {title: 'Bag not sealed', detail: 'Seal the bag (weight and label) before loading it.'};
    case 'bag_on_handover':
      return {title: `Bag already on handover ${d.handover_id || ''}`.trim(), detail: m};
    case 'next_hop_not_on_trip':
      return {title: `Wrong truck: bag goes to ${d.next_hop || 'another site'}`,
        detail: `Trip ${d.trip_id || ''} stops at ${(d.trip_stops || []).join(', ') || 'other sites'}.`};
    case 'handover_closed':
      return {title: 'Handover already closed', detail: 'Start a new handover.'};
    case 'handover_empty':
      return {title: 'No bags on this handover', detail: 'Scan sealed bags on before closing.'};
    case 'handover_not_found':
      return {title: 'No such handover', detail: m};
    case 'unknown_trip':
      return {title: 'Unknown trip', detail: m};
    case 'trip_other_station':
      return {title: 'Trip leaves from another station', detail: m};
    case 'invalid_handover':
      return {title: 'Check the handover details', detail: m};
    case 'invalid_next_hop':
    case 'unknown_next_hop':
      return {title: 'Not a known next hop', detail: m};
    case 'dependency_unavailable':
      return {title: 'A system did not answer', detail: 'Nothing was saved. Try again in a moment.'};
    case 'forbidden':
      return {title: 'Not allowed', detail: m};
    case 'rate_limited':
      return {title: 'Too fast', detail: 'Wait a second and scan again.'};
    case 'unauthenticated':
      return {title: 'Logged out', detail: 'Log in again.'};
    case 'not_found':
      return {title: 'Not found', detail: m};
    case 'scan_id_reused':
      return {title: 'Scan clash', detail: 'Scan again.'};
    default:
      return {title: m || 'Something went wrong', detail: e.code ? `code ${e.code}` : ''};
  }
}
