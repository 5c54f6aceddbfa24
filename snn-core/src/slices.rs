//! Slice bookkeeping for the project's parallel kernels (device-independent).

/// Splits `buf` into planes of `plane` elements (e.g. one time step each)
/// and each plane into pieces of `piece` (the last one may be shorter);
/// returns, for each piece index, that piece of every plane. Parallel
/// kernels hand each task its own disjoint slices this way before the
/// tasks start, when a task's share is one piece of every step.
pub fn pieces_of_planes<T>(buf: &mut [T], plane: usize, piece: usize) -> Vec<Vec<&mut [T]>> {
    let (plane, piece) = (plane.max(1), piece.max(1));
    let mut pieces: Vec<Vec<&mut [T]>> = (0..plane.div_ceil(piece)).map(|_| Vec::new()).collect();
    for p in buf.chunks_mut(plane) {
        for (i, s) in p.chunks_mut(piece).enumerate() {
            pieces[i].push(s);
        }
    }
    pieces
}

#[cfg(test)]
mod tests {
    #[test]
    fn pieces_of_planes_hands_out_each_piece_of_every_plane() {
        let mut buf: Vec<u32> = (0..10).collect();
        // Two planes of 5, pieces of 2: [0,1] [2,3] [4] / [5,6] [7,8] [9].
        let pieces = super::pieces_of_planes(&mut buf, 5, 2);
        let got: Vec<Vec<Vec<u32>>> = pieces
            .into_iter()
            .map(|p| p.into_iter().map(|s| s.to_vec()).collect())
            .collect();
        assert_eq!(
            got,
            vec![
                vec![vec![0, 1], vec![5, 6]],
                vec![vec![2, 3], vec![7, 8]],
                vec![vec![4], vec![9]],
            ]
        );
    }
}
